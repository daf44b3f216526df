#ifndef NETNET_CDNNL_SHIM_H
#define NETNET_CDNNL_SHIM_H
// oneDNN (Debian's libdnnl-dev 2.6): the bf16 matrix multiplication behind `--precision bf16`.
// Debian ships no pkg-config file for it; the header is <oneapi/dnnl/dnnl.h>, the library -ldnnl.
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>

// dnnl_dims_t is a C array (a 12-tuple in Swift): build the descriptor from plain pointers here.
static inline dnnl_status_t netnet_dnnl_memory_desc(dnnl_memory_desc_t *desc, int ndims,
                                                    const int64_t *dims, const int64_t *strides,
                                                    dnnl_data_type_t type) {
    dnnl_dims_t d = {0}, s = {0};
    if (ndims < 1 || ndims > DNNL_MAX_NDIMS) return dnnl_invalid_arguments;
    for (int i = 0; i < ndims; i++) { d[i] = dims[i]; s[i] = strides[i]; }
    return dnnl_memory_desc_init_by_strides(desc, ndims, d, type, s);
}
#endif
