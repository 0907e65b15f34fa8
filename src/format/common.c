/*
 * common.c - the format module's shared helpers: the output sink, JSON
 * output identical to JSON.stringify, errno mapping for jansson and zlib,
 * and small string utilities.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* ---- errno text and library error mapping ------------------------------ */

const char *s3m_format_errno_text(int code)
{
    if (code < 0)
        code = -code;
    switch (code) {
    case 0: return "success";
    case ENOENT: return "no such file or directory";
    case EACCES: return "permission denied";
    case EPERM: return "operation not permitted";
    case EROFS: return "read-only file system";
    case ENOSPC: return "no space left on device";
    case EDQUOT: return "disk quota exceeded";
    case ENOTDIR: return "not a directory";
    case EISDIR: return "is a directory";
    case EEXIST: return "file exists";
    case ENOMEM: return "out of memory";
    case EIO: return "input/output error";
    case EINVAL: return "invalid argument";
    case ENAMETOOLONG: return "name too long";
    case EFBIG: return "file too large";
    case EMFILE: return "too many open files";
    case ENFILE: return "too many open files in system";
    case ELOOP: return "too many levels of symbolic links";
    case EXDEV: return "cross-device link";
    case EBUSY: return "device or resource busy";
    case ENOTEMPTY: return "directory not empty";
    default: return "system error";
    }
}

int fmt_json_errno(const json_error_t *error)
{
    return json_error_code(error) == json_error_out_of_memory ? -ENOMEM
                                                              : -EINVAL;
}

int fmt_thread_start(pthread_t *thread, void *(*main_fn)(void *), void *arg)
{
    pthread_attr_t attr;
    cpu_set_t process;
    int rc = pthread_attr_init(&attr);
    if (rc)
        return rc;
    /* the main thread's mask: getpid() names it */
    if (sched_getaffinity(getpid(), sizeof(process), &process) == 0)
        pthread_attr_setaffinity_np(&attr, sizeof(process), &process);
    rc = pthread_create(thread, &attr, main_fn, arg);
    pthread_attr_destroy(&attr);
    return rc;
}

int fmt_read_whole(FILE *file, char **text, size_t *len)
{
    size_t cap = 1 << 16, used = 0;
    struct stat st;
    /* a regular file's size, plus room to see its end: one allocation */
    if (fstat(fileno(file), &st) == 0 && S_ISREG(st.st_mode) &&
        (uint64_t)st.st_size < SIZE_MAX / 2 && (size_t)st.st_size >= cap)
        cap = (size_t)st.st_size + 1;
    char *buf = s3m_malloc(cap + 1);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (used == cap) {
            char *grown = s3m_realloc(buf, cap * 2 + 1);
            if (!grown) {
                free(buf);
                return -ENOMEM;
            }
            buf = grown;
            cap *= 2;
        }
        errno = 0;
        size_t got = fread(buf + used, 1, cap - used, file);
        used += got;
        if (got == 0) {
            if (ferror(file)) {
                int rc = errno ? -errno : -EIO;
                free(buf);
                return rc;
            }
            break;
        }
    }
    buf[used] = '\0';
    *text = buf;
    *len = used;
    return 0;
}

int fmt_zlib_errno(int zlib_code)
{
    switch (zlib_code) {
    case Z_OK:
    case Z_STREAM_END:
        return 0;
    case Z_ERRNO:
        return errno ? -errno : -EIO;
    case Z_MEM_ERROR:
        return -ENOMEM;
    default:                  /* Z_DATA_ERROR, Z_BUF_ERROR (truncated), ... */
        return -EINVAL;
    }
}

/* ---- the sink ---------------------------------------------------------- */

/* Hands len bytes to the file or the gzip stream. */
static void sink_write(struct fmt_out *out, const void *data, size_t len)
{
    if (out->file) {
        if (fwrite(data, 1, len, out->file) != len)
            out->error = errno ? errno : EIO;
        return;
    }
    const char *bytes = data;
    size_t done = 0;
    while (done < len) {
        unsigned piece = len - done > (1u << 30) ? 1u << 30
                                                 : (unsigned)(len - done);
        if (gzwrite(out->gz, bytes + done, piece) != (int)piece) {
            int zlib_code;
            gzerror(out->gz, &zlib_code);
            out->error = -fmt_zlib_errno(zlib_code);
            if (!out->error)
                out->error = EIO;
            return;
        }
        done += piece;
    }
}

void fmt_out_stage(struct fmt_out *out, char *buffer, size_t cap)
{
    out->stage = buffer;
    out->stage_cap = cap;
}

/* The stage and its size. */
static char *stage_of(struct fmt_out *out, size_t *cap)
{
    if (out->stage) {
        *cap = out->stage_cap;
        return out->stage;
    }
    *cap = sizeof(out->staged);
    return out->staged;
}

int fmt_out_flush(struct fmt_out *out)
{
    size_t cap;
    char *stage = stage_of(out, &cap);

    if (out->staged_len && !out->error)
        sink_write(out, stage, out->staged_len);
    out->staged_len = 0;
    return out->error;
}

void fmt_out_write(struct fmt_out *out, const void *data, size_t len)
{
    size_t cap;
    char *stage = stage_of(out, &cap);

    if (out->error || len == 0)
        return;
    out->bytes += len;
    if (len <= cap - out->staged_len) {
        memcpy(stage + out->staged_len, data, len);
        out->staged_len += len;
        return;
    }
    if (fmt_out_flush(out))
        return;
    if (len >= cap / 2) {
        sink_write(out, data, len);
    } else {
        memcpy(stage, data, len);
        out->staged_len = len;
    }
}

char *fmt_out_reserve(struct fmt_out *out, size_t len)
{
    size_t cap;
    char *stage = stage_of(out, &cap);

    if (out->error || len > cap)
        return NULL;
    if (len > cap - out->staged_len && fmt_out_flush(out))
        return NULL;
    return stage + out->staged_len;
}

void fmt_out_commit(struct fmt_out *out, size_t len)
{
    out->staged_len += len;
    out->bytes += len;
}

void fmt_out_u64(struct fmt_out *out, uint64_t value)
{
    char digits[20];
    size_t n = sizeof(digits);

    do {
        digits[--n] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    fmt_out_write(out, digits + n, sizeof(digits) - n);
}

void fmt_out_text(struct fmt_out *out, const char *text)
{
    fmt_out_write(out, text, strlen(text));
}

void fmt_out_printf(struct fmt_out *out, const char *format, ...)
{
    char buffer[256];
    va_list args;
    int n;

    va_start(args, format);
    n = vsnprintf(buffer, sizeof(buffer), format, args);
    va_end(args);
    if (n < 0 || (size_t)n >= sizeof(buffer)) {
        if (!out->error)
            out->error = EINVAL;
        return;
    }
    fmt_out_write(out, buffer, (size_t)n);
}

/* ---- UTF-8 and JSON strings -------------------------------------------- */

size_t fmt_utf8_next(const unsigned char *text, size_t len,
                     uint32_t *code_point)
{
    unsigned char lead = text[0];
    size_t need;
    uint32_t cp;

    if (lead < 0x80) {
        *code_point = lead;
        return 1;
    }
    if (lead < 0xc2 || lead > 0xf4)
        return 0;
    need = lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
    if (need > len)
        return 0;
    cp = lead & (need == 2 ? 0x1f : need == 3 ? 0x0f : 0x07);
    for (size_t i = 1; i < need; i++) {
        if ((text[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (text[i] & 0x3f);
    }
    if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    *code_point = cp;
    return need;
}

const unsigned char fmt_json_plain[256] = {
    [0x20] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,   /* 0x20-0x2f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,            /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,            /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,            /* 0x50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,            /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,            /* 0x70 */
};

/* True when one of the 8 bytes of w equals byte. */
static bool word_has_byte(uint64_t w, unsigned char byte)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t x = w ^ (ones * byte);
    return ((x - ones) & ~x & highs) != 0;
}

#ifdef __SSE2__
/* 16 bytes at a time: a byte is plain unless it is below 0x20 or from 0x80
 * up (both below 0x20 as signed bytes), '"' or '\\'. Sets *span to the
 * first such byte and returns true, or to the bytes scanned (a multiple of
 * 16) and returns false. */
static bool plain_span_sse2(const unsigned char *text, size_t len,
                            size_t *span)
{
    const __m128i space = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'),
                  backslash = _mm_set1_epi8('\\');
    size_t i = 0;

    for (; i + 16 <= len; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(text + i));
        __m128i stop = _mm_or_si128(_mm_cmplt_epi8(v, space),
                                    _mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                 _mm_cmpeq_epi8(v, backslash)));
        unsigned mask = (unsigned)_mm_movemask_epi8(stop);
        if (mask) {
            *span = i + (size_t)__builtin_ctz(mask);
            return true;
        }
    }
    *span = i;
    return false;
}
#endif

size_t fmt_json_plain_span(const unsigned char *text, size_t len)
{
    size_t i = 0;
#ifdef __SSE2__
    if (plain_span_sse2(text, len, &i))
        return i;
#endif
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, text + i, 8);
        if (fmt_word_has_unprintable(w) || word_has_byte(w, '"') ||
            word_has_byte(w, '\\'))
            break;
    }
    while (i < len && fmt_json_plain[text[i]])
        i++;
    return i;
}

bool fmt_out_json_string(struct fmt_out *out, const char *text, size_t len,
                         enum fmt_bad_utf8 bad)
{
    const unsigned char *bytes = (const unsigned char *)text;
    size_t start = 0, i = 0;
    bool exact = true;

    fmt_out_write(out, "\"", 1);
    while (i < len) {
        i += fmt_json_plain_span(bytes + i, len - i);
        if (i == len)
            break;
        unsigned char c = bytes[i];
        const char *escape = NULL;
        char small[8];
        size_t step = 1;
        uint32_t cp;

        if (c == '"')
            escape = "\\\"";
        else if (c == '\\')
            escape = "\\\\";
        else if (c == '\b')
            escape = "\\b";
        else if (c == '\f')
            escape = "\\f";
        else if (c == '\n')
            escape = "\\n";
        else if (c == '\r')
            escape = "\\r";
        else if (c == '\t')
            escape = "\\t";
        else if (c < 0x20) {
            snprintf(small, sizeof(small), "\\u%04x", c);
            escape = small;
        } else if (c >= 0x80) {
            step = fmt_utf8_next(bytes + i, len - i, &cp);
            if (step == 0) {
                exact = false;
                step = 1;
                if (bad == FMT_BAD_UTF8_HEX) {
                    snprintf(small, sizeof(small), "\\\\x%02x", c);
                    escape = small;
                } else {
                    escape = "\xef\xbf\xbd";
                }
            }
        }
        if (escape) {
            fmt_out_write(out, text + start, i - start);
            fmt_out_text(out, escape);
            start = i + step;
        }
        i += step;
    }
    fmt_out_write(out, text + start, len - start);
    fmt_out_write(out, "\"", 1);
    return exact;
}

/* ---- JSON values as JSON.stringify prints them ------------------------- */

/* Number::toString for finite doubles: the shortest digits that read back
 * as v, placed as ECMAScript places them. */
static void write_js_real(struct fmt_out *out, double v)
{
    char text[64], digits[32];
    size_t count = 0;
    int exponent, n;

    if (!isfinite(v)) {
        fmt_out_text(out, "null");
        return;
    }
    if (v == 0) {
        fmt_out_text(out, "0");
        return;
    }
    if (v < 0) {
        fmt_out_text(out, "-");
        v = -v;
    }
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(text, sizeof(text), "%.*e", precision - 1, v);
        if (strtod(text, NULL) == v)
            break;
    }
    /* text is "d.ddde[+-]xx" or "de[+-]xx" */
    char *e = strchr(text, 'e');
    exponent = atoi(e + 1);
    for (char *p = text; p < e; p++)
        if (*p != '.')
            digits[count++] = *p;
    while (count > 1 && digits[count - 1] == '0')
        count--;
    digits[count] = '\0';
    n = exponent + 1;
    if ((int)count <= n && n <= 21) {
        fmt_out_write(out, digits, count);
        for (int i = (int)count; i < n; i++)
            fmt_out_write(out, "0", 1);
    } else if (0 < n && n <= 21) {
        fmt_out_write(out, digits, (size_t)n);
        fmt_out_write(out, ".", 1);
        fmt_out_write(out, digits + n, count - (size_t)n);
    } else if (-6 < n && n <= 0) {
        fmt_out_write(out, "0.", 2);
        for (int i = 0; i < -n; i++)
            fmt_out_write(out, "0", 1);
        fmt_out_write(out, digits, count);
    } else {
        fmt_out_write(out, digits, 1);
        if (count > 1) {
            fmt_out_write(out, ".", 1);
            fmt_out_write(out, digits + 1, count - 1);
        }
        fmt_out_printf(out, "e%c%d", n - 1 < 0 ? '-' : '+', abs(n - 1));
    }
}

/* True when name is an array index as JavaScript sees it: "0" or a decimal
 * without leading zero below 2^32 - 1. */
static bool js_index_name(const char *name, size_t len, uint64_t *index)
{
    uint64_t value = 0;

    if (len == 0 || len > 10 || (len > 1 && name[0] == '0'))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        value = value * 10 + (uint64_t)(name[i] - '0');
    }
    if (value >= 4294967295u)
        return false;
    *index = value;
    return true;
}

struct js_member {
    const char *name;
    size_t len;
    uint64_t index;
    const json_t *value;
};

static int compare_js_index(const void *a, const void *b)
{
    const struct js_member *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

static void write_js_object(struct fmt_out *out, const json_t *object)
{
    size_t size = json_object_size(object), indexed = 0, named = 0;
    struct js_member *members;
    const char *name;
    size_t len;
    json_t *value;

    if (size == 0) {
        fmt_out_text(out, "{}");
        return;
    }
    members = s3m_calloc(size, sizeof(*members));
    if (!members) {
        if (!out->error)
            out->error = ENOMEM;
        return;
    }
    /* First pass: integer-like names, sorted; then the others in order. */
    json_object_keylen_foreach((json_t *)object, name, len, value) {
        uint64_t index;
        if (js_index_name(name, len, &index))
            members[indexed++] = (struct js_member){name, len, index, value};
    }
    qsort(members, indexed, sizeof(*members), compare_js_index);
    json_object_keylen_foreach((json_t *)object, name, len, value) {
        uint64_t index;
        if (!js_index_name(name, len, &index))
            members[indexed + named++] =
                (struct js_member){name, len, 0, value};
    }
    fmt_out_write(out, "{", 1);
    for (size_t i = 0; i < size; i++) {
        if (i)
            fmt_out_write(out, ",", 1);
        fmt_out_json_string(out, members[i].name, members[i].len,
                            FMT_BAD_UTF8_REPLACE);
        fmt_out_write(out, ":", 1);
        fmt_out_json_js(out, members[i].value);
    }
    fmt_out_write(out, "}", 1);
    free(members);
}

void fmt_out_json_js(struct fmt_out *out, const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT:
        write_js_object(out, value);
        break;
    case JSON_ARRAY:
        fmt_out_write(out, "[", 1);
        for (size_t i = 0; i < json_array_size(value); i++) {
            if (i)
                fmt_out_write(out, ",", 1);
            fmt_out_json_js(out, json_array_get(value, i));
        }
        fmt_out_write(out, "]", 1);
        break;
    case JSON_STRING:
        fmt_out_json_string(out, json_string_value(value),
                            json_string_length(value), FMT_BAD_UTF8_REPLACE);
        break;
    case JSON_INTEGER:
        fmt_out_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
        break;
    case JSON_REAL:
        write_js_real(out, json_real_value(value));
        break;
    case JSON_TRUE:
        fmt_out_text(out, "true");
        break;
    case JSON_FALSE:
        fmt_out_text(out, "false");
        break;
    case JSON_NULL:
        fmt_out_text(out, "null");
        break;
    }
}

/* ---- small string helpers ---------------------------------------------- */

const char *fmt_key_for_message(const char *key, size_t len, char buffer[128])
{
    const unsigned char *bytes = (const unsigned char *)key;
    size_t used = 0, i = 0;

    while (i < len && used < 120) {
        uint32_t cp;
        size_t step = fmt_utf8_next(bytes + i, len - i, &cp);
        if (step == 0 || cp < 0x20 || cp == 0x7f) {
            buffer[used++] = '?';
            i += step ? step : 1;
            continue;
        }
        if (used + step > 120)
            break;
        memcpy(buffer + used, key + i, step);
        used += step;
        i += step;
    }
    if (i < len) {
        memcpy(buffer + used, "...", 3);
        used += 3;
    }
    buffer[used] = '\0';
    return buffer;
}

char *fmt_path_join(const char *dir, const char *name)
{
    size_t dir_len = strlen(dir), name_len = strlen(name);
    bool slash = dir_len > 0 && dir[dir_len - 1] == '/';
    char *path = s3m_malloc(dir_len + name_len + 2);

    if (!path)
        return NULL;
    memcpy(path, dir, dir_len);
    if (!slash)
        path[dir_len++] = '/';
    memcpy(path + dir_len, name, name_len + 1);
    return path;
}

void fmt_free_list(char **list)
{
    if (!list)
        return;
    for (char **p = list; *p; p++)
        free(*p);
    free(list);
}

int fmt_split_list(const char *text, char ***out, size_t *count)
{
    size_t n = 0, slots = 1;
    char **list;

    *out = NULL;
    *count = 0;
    if (!text || !*text)
        return 0;
    for (const char *p = text; *p; p++)
        if (*p == ',')
            slots++;
    list = s3m_calloc(slots + 1, sizeof(*list));
    if (!list)
        return -ENOMEM;
    for (const char *p = text; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *name = p;
        size_t name_len = len;
        while (name_len > 0 && (*name == ' ' || *name == '\t')) {
            name++;
            name_len--;
        }
        while (name_len > 0 &&
               (name[name_len - 1] == ' ' || name[name_len - 1] == '\t'))
            name_len--;
        if (name_len > 0) {
            list[n] = s3m_strndup(name, name_len);
            if (!list[n]) {
                fmt_free_list(list);
                return -ENOMEM;
            }
            n++;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if (n == 0) {
        free(list);
        return 0;
    }
    *out = list;
    *count = n;
    return 0;
}

bool fmt_list_has(char *const *list, const char *name)
{
    if (!list)
        return false;
    for (char *const *p = list; *p; p++)
        if (strcmp(*p, name) == 0)
            return true;
    return false;
}
