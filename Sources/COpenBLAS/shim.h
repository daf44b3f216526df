#ifndef NETNET_COPENBLAS_SHIM_H
#define NETNET_COPENBLAS_SHIM_H
#include <cblas.h>
#endif
