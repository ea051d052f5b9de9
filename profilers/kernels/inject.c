/*
 * Wattson's kernel tracer: a CUPTI injection library.
 *
 * The CUDA driver loads it into an unmodified program when CUDA_INJECTION64_PATH names it, and
 * calls InitializeInjection() during cuInit. It records every kernel (and, when
 * WATTSON_KERNEL_TRACE_COPIES is 1, every memcpy and memset) with CUPTI's buffered activity API and
 * appends them as tab-separated lines to the file named by WATTSON_KERNEL_TRACE. profilers/kernels/trace.py reads that file; docs/per-kernel-energy.md
 * describes the format and the clock alignment.
 *
 * Lines (every field after the first is tab-separated, times in CUPTI nanoseconds):
 *   H pid format_version cupti_api_version
 *   C pid label monotonic_before_ns cupti_ns monotonic_after_ns     (clock pair)
 *   K pid start end device context stream correlation gx gy gz bx by bz name
 *   M pid start end device context stream correlation copy_kind bytes
 *   S pid start end device context stream correlation bytes
 *   D pid dropped_records
 *   E pid message
 * Each buffer is formatted in memory and appended with one write() on an O_APPEND descriptor, so
 * several processes of one program (MPI ranks, fork) can share a trace file without mixing lines.
 */
#define _GNU_SOURCE
#include <cupti.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WATTSON_TRACE_ENV "WATTSON_KERNEL_TRACE"
#define WATTSON_COPIES_ENV "WATTSON_KERNEL_TRACE_COPIES"
#define WATTSON_TRACE_FORMAT 1
#define WATTSON_BUFFER_BYTES (8u << 20)
#define WATTSON_BUFFER_ALIGN 8

/* The newest record struct this toolkit declares. Every version since Kernel4 / Memcpy / Memset
 * keeps the fields read here at the same offsets (checked below), so older toolkits use those. */
#if CUPTI_API_VERSION >= 130000
typedef CUpti_ActivityKernel10 wattson_kernel_t;
typedef CUpti_ActivityMemcpy6 wattson_memcpy_t;
typedef CUpti_ActivityMemset4 wattson_memset_t;
#else
typedef CUpti_ActivityKernel4 wattson_kernel_t;
typedef CUpti_ActivityMemcpy wattson_memcpy_t;
typedef CUpti_ActivityMemset wattson_memset_t;
#endif

_Static_assert(offsetof(wattson_kernel_t, name) == offsetof(CUpti_ActivityKernel4, name),
               "kernel record layout changed");
_Static_assert(offsetof(wattson_memcpy_t, streamId) == offsetof(CUpti_ActivityMemcpy, streamId),
               "memcpy record layout changed");

static int trace_fd = -1;
static pid_t trace_pid;
static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;

/* A growable text buffer: one per CUPTI buffer, written with a single write(). */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} text_t;

static int text_reserve(text_t *t, size_t extra) {
    if (t->len + extra + 1 <= t->cap) return 1;
    size_t cap = t->cap ? t->cap * 2 : 1 << 16;
    while (cap < t->len + extra + 1) cap *= 2;
    char *grown = realloc(t->data, cap);
    if (!grown) return 0; /* out of memory: drop the record rather than crash the program */
    t->data = grown;
    t->cap = cap;
    return 1;
}

static void text_printf(text_t *t, const char *fmt, ...) {
    for (;;) {
        size_t room = t->cap - t->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->data ? t->data + t->len : NULL, t->data ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (t->data && (size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        if (!text_reserve(t, (size_t)n)) return; /* out of memory: drop the line */
    }
}

static void text_flush(text_t *t) {
    if (trace_fd < 0 || t->len == 0) return;
    pthread_mutex_lock(&trace_lock);
    size_t done = 0;
    while (done < t->len) {
        ssize_t n = write(trace_fd, t->data + done, t->len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += (size_t)n;
    }
    pthread_mutex_unlock(&trace_lock);
    t->len = 0;
}

static void text_free(text_t *t) {
    free(t->data);
    t->data = NULL;
    t->len = t->cap = 0;
}

static uint64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *cupti_error(CUptiResult r) {
    const char *s = NULL;
    if (cuptiGetResultString(r, &s) != CUPTI_SUCCESS || !s) return "unknown CUPTI error";
    return s;
}

/* A (monotonic, CUPTI) pair: the monotonic clock read just before and just after CUPTI's. The
 * tightest of a few tries is kept; its bracket bounds the alignment error of this pair. */
static void clock_pair(text_t *t, const char *label) {
    uint64_t best_before = 0, best_cupti = 0, best_after = 0;
    for (int i = 0; i < 5; i++) {
        uint64_t cupti_ns = 0;
        uint64_t before = monotonic_ns();
        CUptiResult r = cuptiGetTimestamp(&cupti_ns);
        uint64_t after = monotonic_ns();
        if (r != CUPTI_SUCCESS) {
            text_printf(t, "E\t%d\tcuptiGetTimestamp failed: %s\n", (int)trace_pid, cupti_error(r));
            return;
        }
        if (best_after == 0 || after - before < best_after - best_before) {
            best_before = before;
            best_cupti = cupti_ns;
            best_after = after;
        }
    }
    text_printf(t, "C\t%d\t%s\t%llu\t%llu\t%llu\n", (int)trace_pid, label,
                (unsigned long long)best_before, (unsigned long long)best_cupti,
                (unsigned long long)best_after);
}

/* Records are formatted by hand rather than with printf: a program that launches ~10,000 kernels,
 * copies and memsets per second produces tens of thousands of records, all formatted while it
 * exits, and vsnprintf's cost then showed in its wall time. */
/* The callers reserve room first: a field is a tab and at most 20 digits and a sign. */
#define FIELD_BYTES 22

static void put_digits(text_t *t, uint64_t v) {
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) t->data[t->len++] = digits[--n];
}

static void put_u64(text_t *t, uint64_t v) {
    t->data[t->len++] = '\t';
    put_digits(t, v);
}

static void put_i64(text_t *t, int64_t v) {
    t->data[t->len++] = '\t';
    if (v < 0) t->data[t->len++] = '-';
    put_digits(t, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);
}

/* Kernel names are mangled symbols; a tab or newline would break a line, so they become spaces. */
static void put_name(text_t *t, const char *name) {
    if (!name) name = "<unknown>";
    size_t n = strlen(name);
    if (!text_reserve(t, n + 2)) return;
    t->data[t->len++] = '\t';
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        t->data[t->len++] = (c == '\t' || c == '\n' || c == '\r') ? ' ' : c;
    }
}

static void end_line(text_t *t) {
    t->data[t->len++] = '\n'; /* text_reserve always leaves one byte spare */
}

/* The fields every record line starts with: tag, pid, start, end, device, context, stream, correlation. */
#define HEAD_FIELDS 7
static void put_head(text_t *t, char tag, uint64_t start, uint64_t end, uint32_t device, uint32_t context,
                     uint32_t stream, uint32_t correlation) {
    t->data[t->len++] = tag;
    put_u64(t, (uint64_t)trace_pid);
    put_u64(t, start);
    put_u64(t, end);
    put_u64(t, device);
    put_u64(t, context);
    put_u64(t, stream);
    put_u64(t, correlation);
}

static void format_record(text_t *t, const CUpti_Activity *record) {
    switch (record->kind) {
    case CUPTI_ACTIVITY_KIND_KERNEL:
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
        const wattson_kernel_t *k = (const wattson_kernel_t *)record;
        if (!text_reserve(t, 1 + (HEAD_FIELDS + 6) * FIELD_BYTES)) return;
        put_head(t, 'K', k->start, k->end, k->deviceId, k->contextId, k->streamId, k->correlationId);
        put_i64(t, k->gridX);
        put_i64(t, k->gridY);
        put_i64(t, k->gridZ);
        put_i64(t, k->blockX);
        put_i64(t, k->blockY);
        put_i64(t, k->blockZ);
        put_name(t, k->name);
        if (text_reserve(t, 1)) end_line(t);
        break;
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY: {
        const wattson_memcpy_t *m = (const wattson_memcpy_t *)record;
        if (!text_reserve(t, 1 + (HEAD_FIELDS + 2) * FIELD_BYTES)) return;
        put_head(t, 'M', m->start, m->end, m->deviceId, m->contextId, m->streamId, m->correlationId);
        put_u64(t, m->copyKind);
        put_u64(t, m->bytes);
        end_line(t);
        break;
    }
    case CUPTI_ACTIVITY_KIND_MEMSET: {
        const wattson_memset_t *m = (const wattson_memset_t *)record;
        if (!text_reserve(t, 1 + (HEAD_FIELDS + 1) * FIELD_BYTES)) return;
        put_head(t, 'S', m->start, m->end, m->deviceId, m->contextId, m->streamId, m->correlationId);
        put_u64(t, m->bytes);
        end_line(t);
        break;
    }
    default:
        break;
    }
}

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records) {
    *buffer = aligned_alloc(WATTSON_BUFFER_ALIGN, WATTSON_BUFFER_BYTES);
    *size = *buffer ? WATTSON_BUFFER_BYTES : 0; /* no buffer: CUPTI counts the records as dropped */
    *max_records = 0;
}

static void CUPTIAPI buffer_completed(CUcontext context, uint32_t stream, uint8_t *buffer,
                                      size_t size, size_t valid_size) {
    (void)size;
    text_t t = {0};
    CUpti_Activity *record = NULL;
    for (;;) {
        CUptiResult r = cuptiActivityGetNextRecord(buffer, valid_size, &record);
        if (r == CUPTI_ERROR_MAX_LIMIT_REACHED) break;
        if (r != CUPTI_SUCCESS) {
            text_printf(&t, "E\t%d\treading an activity record failed: %s\n", (int)trace_pid,
                        cupti_error(r));
            break;
        }
        format_record(&t, record);
    }
    size_t dropped = 0;
    if (cuptiActivityGetNumDroppedRecords(context, stream, &dropped) == CUPTI_SUCCESS && dropped)
        text_printf(&t, "D\t%d\t%zu\n", (int)trace_pid, dropped);
    clock_pair(&t, "buffer");
    text_flush(&t);
    text_free(&t);
    free(buffer);
}

static void at_exit(void) {
    if (getpid() != trace_pid) return; /* a forked child: CUDA is not usable there, and not ours */
    CUptiResult r = cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    text_t t = {0};
    if (r != CUPTI_SUCCESS)
        text_printf(&t, "E\t%d\tflushing activity records failed: %s\n", (int)trace_pid,
                    cupti_error(r));
    clock_pair(&t, "exit");
    text_flush(&t);
    text_free(&t);
}

static int enable(text_t *t, CUpti_ActivityKind kind, const char *what) {
    CUptiResult r = cuptiActivityEnable(kind);
    if (r == CUPTI_SUCCESS) return 1;
    text_printf(t, "E\t%d\tenabling %s records failed: %s\n", (int)trace_pid, what, cupti_error(r));
    return 0;
}

int InitializeInjection(void) {
    const char *path = getenv(WATTSON_TRACE_ENV);
    if (!path || !*path) return 1; /* loaded without a trace file: trace nothing */
    trace_pid = getpid();
    trace_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (trace_fd < 0) {
        fprintf(stderr, "wattson: cannot open the kernel trace %s: %s\n", path, strerror(errno));
        return 1; /* the program still runs; the agent reports the missing trace */
    }
    text_t t = {0};
    uint32_t version = 0;
    cuptiGetVersion(&version);
    text_printf(&t, "H\t%d\t%d\t%u\n", (int)trace_pid, WATTSON_TRACE_FORMAT, version);
    clock_pair(&t, "init");
    CUptiResult r = cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
    if (r != CUPTI_SUCCESS) {
        text_printf(&t, "E\t%d\tregistering activity buffers failed: %s\n", (int)trace_pid,
                    cupti_error(r));
    } else if (enable(&t, CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, "kernel")) {
        /* CUPTI times each copy and memset at ~1 us apiece; a loop of small synchronous copies paid
         * for it in wall time (docs/per-kernel-energy.md), so they are traced only on request. */
        const char *copies = getenv(WATTSON_COPIES_ENV);
        if (copies && strcmp(copies, "1") == 0) {
            enable(&t, CUPTI_ACTIVITY_KIND_MEMCPY, "memcpy");
            enable(&t, CUPTI_ACTIVITY_KIND_MEMSET, "memset");
        }
        atexit(at_exit);
    }
    text_flush(&t);
    text_free(&t);
    return 1;
}
