// CFFmpeg shim: the FFmpeg headers netnet uses, plus `static inline` wrappers for the
// function-like macros Swift cannot import (AVERROR(e), AVERROR_EOF, av_err2str, …) and a
// few helpers that avoid fixed-size C arrays (AVFrame.data / linesize are imported as tuples).
//
// Written against FFmpeg 5.1 (libavformat 59, libavcodec 59, libswscale 6, libavutil 57, libavfilter 8).
// netnet_install_log_callback replaces FFmpeg's process-wide log callback (see "Logging").
// Only netnet_install_interrupt stores a pointer (the guard, in the format context's interrupt
// callback; its Swift owner outlives the context). netnet_frame_data/netnet_frame_linesize return interior pointers
// of an AVFrame: valid only while that frame (owned by a Swift `Frame`) is alive and unchanged.
#ifndef NETNET_CFFMPEG_SHIM_H
#define NETNET_CFFMPEG_SHIM_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <stdlib.h>
#include <dlfcn.h>

#include <libavformat/avformat.h>
#include <libavformat/avio.h>
#include <libavcodec/avcodec.h>
#include <libavcodec/bsf.h>
#include <libswscale/swscale.h>
#include <libavutil/avutil.h>
#include <libavutil/dict.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libavutil/pixfmt.h>
#include <libavutil/detection_bbox.h>
#include <libavutil/mathematics.h>
#include <libavutil/time.h>
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersrc.h>
#include <libavfilter/buffersink.h>

// MARK: - Error codes (function-like macros)

/// AVERROR(EAGAIN): the decoder/encoder wants the other side of the send/receive pair first.
static inline int netnet_averror_eagain(void) { return AVERROR(EAGAIN); }
/// AVERROR(ENOMEM).
static inline int netnet_averror_enomem(void) { return AVERROR(ENOMEM); }
/// AVERROR(EINVAL).
static inline int netnet_averror_einval(void) { return AVERROR(EINVAL); }
/// AVERROR(ENOENT).
static inline int netnet_averror_enoent(void) { return AVERROR(ENOENT); }
/// AVERROR(EIO).
static inline int netnet_averror_eio(void) { return AVERROR(EIO); }
/// AVERROR(e) for any errno value.
static inline int netnet_averror(int e) { return AVERROR(e); }
/// AVERROR_EOF: end of file / fully drained.
static inline int netnet_averror_eof(void) { return AVERROR_EOF; }
/// AVERROR_INVALIDDATA: "Invalid data found when processing input".
static inline int netnet_averror_invaliddata(void) { return AVERROR_INVALIDDATA; }
/// AVERROR_DECODER_NOT_FOUND.
static inline int netnet_averror_decoder_not_found(void) { return AVERROR_DECODER_NOT_FOUND; }
/// AVERROR_ENCODER_NOT_FOUND.
static inline int netnet_averror_encoder_not_found(void) { return AVERROR_ENCODER_NOT_FOUND; }
/// AVERROR_STREAM_NOT_FOUND.
static inline int netnet_averror_stream_not_found(void) { return AVERROR_STREAM_NOT_FOUND; }
/// AVERROR_EXIT (returned when an interrupt callback aborts a blocking call).
static inline int netnet_averror_exit(void) { return AVERROR_EXIT; }

/// av_err2str without the compound literal: writes the message for `errnum` into `buf`
/// (always NUL-terminated). Returns 0 when FFmpeg knew the code, < 0 otherwise (a generic
/// "Error number N occurred" text is still written).
static inline int netnet_strerror(int errnum, char *buf, size_t size) {
    return av_strerror(errnum, buf, size);
}

/// AV_NOPTS_VALUE (defined through UINT64_C(), which Swift cannot import).
static inline int64_t netnet_nopts_value(void) { return AV_NOPTS_VALUE; }

/// AV_PIX_FMT_YUV444P16 (native-endian alias defined through AV_PIX_FMT_NE()).
static inline enum AVPixelFormat netnet_pix_fmt_yuv444p16(void) { return AV_PIX_FMT_YUV444P16; }

/// AVERROR(ETIMEDOUT): "Connection timed out".
static inline int netnet_averror_etimedout(void) { return AVERROR(ETIMEDOUT); }
/// AVERROR(ECONNREFUSED): "Connection refused".
static inline int netnet_averror_econnrefused(void) { return AVERROR(ECONNREFUSED); }

// MARK: - AVFrame fixed arrays

/// frame->data (uint8_t *[AV_NUM_DATA_POINTERS]) as a plain pointer; valid while `frame` is.
static inline uint8_t **netnet_frame_data(AVFrame *frame) { return frame->data; }
/// frame->linesize (int[AV_NUM_DATA_POINTERS]) as a plain pointer; valid while `frame` is.
static inline int *netnet_frame_linesize(AVFrame *frame) { return frame->linesize; }

// MARK: - swscale helpers

/// sws_scale of the first `src_height` rows of `src` (all planes, slice starting at row 0) into `dst`.
/// Returns the output height (> 0) or a negative AVERROR / 0 on failure.
static inline int netnet_sws_scale_frame(struct SwsContext *ctx, const AVFrame *src, int src_height, AVFrame *dst) {
    return sws_scale(ctx, (const uint8_t *const *)src->data, src->linesize, 0, src_height,
                     dst->data, dst->linesize);
}

/// av_image_copy of the top-left width×height picture of `src` into `dst` (same pixel format).
static inline void netnet_frame_copy_pixels(AVFrame *dst, const AVFrame *src, enum AVPixelFormat format, int width, int height) {
    av_image_copy(dst->data, dst->linesize, (const uint8_t **)src->data, src->linesize, format, width, height);
}

/// Zero-fills every buffer a frame references (whole allocations, row and bottom padding included).
/// Only for frames whose buffers nobody else references (e.g. straight after av_frame_get_buffer).
static inline void netnet_frame_zero(AVFrame *frame) {
    for (int i = 0; i < AV_NUM_DATA_POINTERS; i++) {
        if (frame->buf[i] && frame->buf[i]->data) memset(frame->buf[i]->data, 0, frame->buf[i]->size);
    }
}

/// sws_scale of one 8-bit plane (GRAY8 → GRAY8 contexts): the pointer arrays live on this stack frame.
static inline int netnet_sws_scale_plane(struct SwsContext *ctx,
                                         const uint8_t *src, int src_stride, int src_height,
                                         uint8_t *dst, int dst_stride) {
    const uint8_t *src_planes[4] = { src, NULL, NULL, NULL };
    int src_strides[4] = { src_stride, 0, 0, 0 };
    uint8_t *dst_planes[4] = { dst, NULL, NULL, NULL };
    int dst_strides[4] = { dst_stride, 0, 0, 0 };
    return sws_scale(ctx, src_planes, src_strides, 0, src_height, dst_planes, dst_strides);
}

/// Creates and initialises a SwsContext through AVOptions (sws_alloc_context + av_opt_set_int +
/// sws_init_context), which unlike sws_getContext also takes the chroma sample positions
/// (in 1/256 luma samples; -513 = swscale's default for the format). On failure returns NULL and
/// stores the AVERROR in *error; the partially built context is freed here.
static inline struct SwsContext *netnet_sws_create(int src_w, int src_h, enum AVPixelFormat src_format,
                                                   int dst_w, int dst_h, enum AVPixelFormat dst_format,
                                                   int flags, int src_h_chr_pos, int src_v_chr_pos,
                                                   int *error) {
    struct SwsContext *ctx = sws_alloc_context();
    if (!ctx) { *error = AVERROR(ENOMEM); return NULL; }
    int ret = 0;
    if ((ret = av_opt_set_int(ctx, "srcw", src_w, 0)) < 0 ||
        (ret = av_opt_set_int(ctx, "srch", src_h, 0)) < 0 ||
        (ret = av_opt_set_int(ctx, "src_format", src_format, 0)) < 0 ||
        (ret = av_opt_set_int(ctx, "dstw", dst_w, 0)) < 0 ||
        (ret = av_opt_set_int(ctx, "dsth", dst_h, 0)) < 0 ||
        (ret = av_opt_set_int(ctx, "dst_format", dst_format, 0)) < 0 ||
        (ret = av_opt_set_int(ctx, "sws_flags", flags, 0)) < 0 ||
        (ret = av_opt_set_int(ctx, "src_h_chr_pos", src_h_chr_pos, 0)) < 0 ||
        (ret = av_opt_set_int(ctx, "src_v_chr_pos", src_v_chr_pos, 0)) < 0 ||
        (ret = sws_init_context(ctx, NULL, NULL)) < 0) {
        sws_freeContext(ctx);
        *error = ret;
        return NULL;
    }
    *error = 0;
    return ctx;
}

/// sws_getColorspaceDetails + sws_setColorspaceDetails: sets the YUV matrices (AVColorSpace /
/// SWS_CS_* values for sws_getCoefficients) and ranges (1 = full/JPEG, 0 = limited/MPEG) of the
/// source and destination; a negative argument keeps what the context already has.
/// Returns >= 0 on success, < 0 when swscale refuses.
static inline int netnet_sws_set_colorspace(struct SwsContext *ctx, int src_colorspace, int src_full_range,
                                            int dst_colorspace, int dst_full_range) {
    int *inv_table = NULL, *table = NULL;
    int src_range = 0, dst_range = 0, brightness = 0, contrast = 0, saturation = 0;
    int ret = sws_getColorspaceDetails(ctx, &inv_table, &src_range, &table, &dst_range,
                                       &brightness, &contrast, &saturation);
    if (ret < 0) return ret;
    return sws_setColorspaceDetails(ctx,
                                    src_colorspace >= 0 ? sws_getCoefficients(src_colorspace) : inv_table,
                                    src_full_range >= 0 ? src_full_range : src_range,
                                    dst_colorspace >= 0 ? sws_getCoefficients(dst_colorspace) : table,
                                    dst_full_range >= 0 ? dst_full_range : dst_range,
                                    brightness, contrast, saturation);
}

// MARK: - Interrupting blocking I/O

/// Per-input state read by the AVIOInterruptCB installed with netnet_install_interrupt. All fields
/// are accessed with atomic builtins, so any thread may set `*flag` while another blocks in FFmpeg.
/// The memory is owned by Swift objects (the flag by an `Interrupter`, the guard by an `IOGuard`)
/// that outlive the AVFormatContext using them.
typedef struct netnet_io_guard {
    /// Shared "stop now" flag (non-zero: interrupt). Never NULL once installed.
    int32_t *flag;
    /// av_gettime_relative() deadline in microseconds for the blocking call in progress; 0 = none.
    int64_t deadline_us;
    /// Why the callback first said "stop": 0 not yet, 1 interrupted (flag), 2 deadline passed.
    int32_t reason;
} netnet_io_guard;

/// Atomic load of a flag written by another thread.
static inline int32_t netnet_atomic_load_i32(const int32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
/// Atomic store of a flag read by another thread.
static inline void netnet_atomic_store_i32(int32_t *p, int32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/// The AVIOInterruptCB callback: non-zero (abort) when the shared flag is set or the deadline passed.
static inline int netnet_interrupt_check(void *opaque) {
    netnet_io_guard *guard = (netnet_io_guard *)opaque;
    if (!guard) return 0;
    if (guard->flag && __atomic_load_n(guard->flag, __ATOMIC_ACQUIRE)) {
        int32_t none = 0;
        __atomic_compare_exchange_n(&guard->reason, &none, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
        return 1;
    }
    int64_t deadline = __atomic_load_n(&guard->deadline_us, __ATOMIC_ACQUIRE);
    if (deadline > 0 && av_gettime_relative() > deadline) {
        int32_t none = 0;
        __atomic_compare_exchange_n(&guard->reason, &none, 2, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
        return 1;
    }
    return 0;
}

/// Sets the deadline (0: none). The abort reason is kept: once the callback has aborted an I/O call,
/// FFmpeg's byte reader keeps that error, and later calls fail with it too.
static inline void netnet_io_guard_arm(netnet_io_guard *guard, int64_t deadline_us) {
    __atomic_store_n(&guard->deadline_us, deadline_us, __ATOMIC_RELEASE);
}

/// Removes the deadline; keeps the last abort reason.
static inline void netnet_io_guard_disarm(netnet_io_guard *guard) {
    __atomic_store_n(&guard->deadline_us, 0, __ATOMIC_RELEASE);
}

/// Why the callback last aborted a call (0 none, 1 interrupted, 2 deadline passed).
static inline int32_t netnet_io_guard_reason(netnet_io_guard *guard) {
    return __atomic_load_n(&guard->reason, __ATOMIC_ACQUIRE);
}

/// Installs netnet_interrupt_check with `guard` on a format context (before avformat_open_input).
static inline void netnet_install_interrupt(AVFormatContext *ctx, netnet_io_guard *guard) {
    ctx->interrupt_callback.callback = netnet_interrupt_check;
    ctx->interrupt_callback.opaque = guard;
}

// MARK: - Frame size limit (a decoder's get_buffer2)

/// State of netnet_limited_get_buffer2, owned by the Swift VideoDecoder that installs it (it
/// outlives the codec context). `refused` is read and written atomically: with frame threads,
/// FFmpeg calls get_buffer2 from its worker threads.
typedef struct netnet_frame_limit {
    /// Largest width × height a frame may have; 0: no limit.
    int64_t max_pixels;
    /// The first refused frame's size, (width << 32) | height; 0 until a frame is refused.
    int64_t refused;
} netnet_frame_limit;

/// AVCodecContext.get_buffer2 that refuses (AVERROR(ERANGE), nothing allocated) a picture larger
/// than the limit in ctx->opaque, remembering its size, and otherwise allocates as FFmpeg would.
static inline int netnet_limited_get_buffer2(AVCodecContext *ctx, AVFrame *frame, int flags) {
    netnet_frame_limit *limit = (netnet_frame_limit *)ctx->opaque;
    if (limit && limit->max_pixels > 0 && frame->width > 0 && frame->height > 0 &&
        (int64_t)frame->width * (int64_t)frame->height > limit->max_pixels) {
        int64_t none = 0;
        int64_t size = ((int64_t)frame->width << 32) | (int64_t)(uint32_t)frame->height;
        __atomic_compare_exchange_n(&limit->refused, &none, size, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
        return AVERROR(ERANGE);
    }
    return avcodec_default_get_buffer2(ctx, frame, flags);
}

/// Installs netnet_limited_get_buffer2 with `limit` on a decoder (before avcodec_open2).
static inline void netnet_install_frame_limit(AVCodecContext *ctx, netnet_frame_limit *limit) {
    ctx->opaque = limit;
    ctx->get_buffer2 = netnet_limited_get_buffer2;
}

/// The size of the first frame the limit refused, (width << 32) | height; 0 when none was.
static inline int64_t netnet_frame_limit_refused(netnet_frame_limit *limit) {
    return __atomic_load_n(&limit->refused, __ATOMIC_ACQUIRE);
}

/// AVERROR(ERANGE): what netnet_limited_get_buffer2 returns for a frame over the limit.
static inline int netnet_averror_erange(void) { return AVERROR(ERANGE); }

// MARK: - Detection boxes (AV_FRAME_DATA_DETECTION_BBOXES side data, read by drawtext)

/// Box `index` of a header made by av_detection_bbox_create_side_data (av_get_detection_bbox without the assert).
static inline AVDetectionBBox *netnet_detection_bbox(AVDetectionBBoxHeader *header, unsigned int index) {
    return (AVDetectionBBox *)((uint8_t *)header + header->bboxes_offset + index * header->bbox_size);
}

/// Fills one box: position/size in pixels and the label (UTF-8, truncated to fit
/// AV_DETECTION_BBOX_LABEL_NAME_MAX_SIZE - 1 bytes by the caller); no classifications.
static inline void netnet_detection_bbox_set(AVDetectionBBox *bbox, int x, int y, int w, int h, const char *label) {
    bbox->x = x; bbox->y = y; bbox->w = w; bbox->h = h;
    memset(bbox->detect_label, 0, sizeof(bbox->detect_label));
    strncpy(bbox->detect_label, label, sizeof(bbox->detect_label) - 1);
    bbox->detect_confidence = (AVRational){ 0, 1 };
    bbox->classify_count = 0;
}

/// AV_DETECTION_BBOX_LABEL_NAME_MAX_SIZE.
static inline int netnet_detection_label_max_size(void) { return AV_DETECTION_BBOX_LABEL_NAME_MAX_SIZE; }

// MARK: - x264's own parameter parser

/// What libx264 makes of the parameter `name` = `value` (as FFmpeg's `x264-params` hands each
/// pair to it): 0 taken, -1 no such parameter, -2 a bad value, 1 libx264 is not loaded in this
/// process (libavcodec built without it), so nothing could be asked. Runs x264_param_default and
/// x264_param_parse, found with dlsym (libavcodec has already loaded the library), on a 64 kB
/// scratch block, far more than x264_param_t needs (the library ships no header here, so its
/// size is not known at build time), and frees what parsing allocated. Thread-safe: touches nothing shared.
static inline int netnet_x264_param_check(const char *name, const char *value) {
    void (*param_default)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "x264_param_default");
    int (*param_parse)(void *, const char *, const char *) =
        (int (*)(void *, const char *, const char *))dlsym(RTLD_DEFAULT, "x264_param_parse");
    void (*param_cleanup)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "x264_param_cleanup");
    if (!param_default || !param_parse) return 1;
    void *param = calloc(1, 64 * 1024);
    if (!param) return 1;
    param_default(param);
    int result = param_parse(param, name, value);
    if (param_cleanup) param_cleanup(param);
    free(param);
    return result == 0 ? 0 : (result == -1 ? -1 : -2);
}

/// What libx265 makes of `name` = `value` (FFmpeg's `x265-params` hands each pair to
/// x265_param_parse and, as for x264, only warns when it is refused): 0 taken, -1 no such
/// parameter, -2 a bad value, 1 libx265 is not loaded in this process. x265 allocates its own
/// parameter block (x265_param_alloc), so no size is guessed here. Thread-safe: touches nothing shared.
static inline int netnet_x265_param_check(const char *name, const char *value) {
    void *(*param_alloc)(void) = (void *(*)(void))dlsym(RTLD_DEFAULT, "x265_param_alloc");
    void (*param_free)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "x265_param_free");
    void (*param_default)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "x265_param_default");
    int (*param_parse)(void *, const char *, const char *) =
        (int (*)(void *, const char *, const char *))dlsym(RTLD_DEFAULT, "x265_param_parse");
    if (!param_alloc || !param_free || !param_default || !param_parse) return 1;
    void *param = param_alloc();
    if (!param) return 1;
    param_default(param);
    int result = param_parse(param, name, value);
    param_free(param);
    return result == 0 ? 0 : (result == -1 ? -1 : -2);
}

// MARK: - Logging (av_log_set_callback)

/// Receives every FFmpeg log line that passes av_log_get_level(): `level` is FFmpeg's
/// (AV_LOG_PANIC … AV_LOG_TRACE, flags removed), `line` the finished text without its newline,
/// valid only during the call. Defined in Swift (NetnetMedia's FFmpegLogging.swift, `@_cdecl`),
/// so the process has exactly one, which a header-only module could not hold as a C variable.
/// Called on whichever thread FFmpeg logs from, many at once: it must not block long.
void netnet_ffmpeg_log_line(int level, const char *line);

/// The av_log callback: filters by av_log_get_level() as FFmpeg's default does, formats the
/// message with av_log_format_line2 (the "[h264 @ 0x…] " prefix included) into a buffer on this
/// stack (longer lines are cut at 1 kB), trims the newline and hands it to netnet_ffmpeg_log_line.
/// No state is shared: `print_prefix` is a local set to 1, so each call is one whole line (a
/// message FFmpeg builds from several calls comes out as several lines). Thread-safe.
static inline void netnet_av_log_callback(void *avcl, int level, const char *fmt, va_list vl) {
    if (level >= 0) level &= 0xff;   // drop the AV_LOG_C colour flags
    if (level > av_log_get_level()) return;
    char line[1024];
    int print_prefix = 1;
    line[0] = 0;
    av_log_format_line2(avcl, level, fmt, vl, line, (int)sizeof line, &print_prefix);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    if (n == 0) return;
    netnet_ffmpeg_log_line(level, line);
}

/// Routes FFmpeg's log through netnet_av_log_callback (process-wide; av_log_set_callback).
static inline void netnet_install_log_callback(void) { av_log_set_callback(netnet_av_log_callback); }

/// Restores FFmpeg's own callback, which prints to standard error (process-wide).
static inline void netnet_install_default_log_callback(void) { av_log_set_callback(av_log_default_callback); }

#endif
