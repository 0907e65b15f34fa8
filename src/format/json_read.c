/*
 * json_read.c - a JSON parser that builds jansson values from a buffer.
 *
 * jansson's own parser reads one byte at a time through a callback and was
 * about half the time of load, import and export (perf, 20,000 records).
 * This one scans strings in runs: plain ASCII bytes are skipped with a table
 * lookup, multi-byte UTF-8 is checked once, and a string without escapes is
 * handed to jansson in one copy. It accepts what RFC 8259 accepts, with the
 * choices jansson makes under JSON_ALLOW_NUL (\u0000 inside strings, never
 * inside object keys; later duplicate keys win; lone surrogates refused),
 * except that an integer too big for 64 bits becomes a real as in
 * JavaScript instead of an error.
 *
 * Not thread-shared: all state lives in a struct json_reader on the caller's
 * stack. Nesting is limited to FMT_JSON_MAX_DEPTH so that input cannot
 * exhaust the stack.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "s3mem/util.h"

#define FMT_JSON_MAX_DEPTH 512

struct json_reader {
    const unsigned char *text;
    size_t len;
    size_t pos;
    unsigned depth;
    char *scratch;            /* owned: escaped strings are decoded here */
    const char *streamed;     /* borrowed: top-level member to stream */
    fmt_json_member_fn member_fn;
    const struct fmt_json_flat_stream *flat; /* borrowed: or this */
    void *member_ctx;
    size_t scratch_cap;
    char *name;               /* owned: flat member names are read here */
    size_t name_cap;
    struct fmt_json_error *error;
};

static json_t *parse_value(struct json_reader *r);

/* Records the first error at byte offset at; returns NULL for the caller. */
static json_t *fail_at(struct json_reader *r, size_t at, int code,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static json_t *fail_at(struct json_reader *r, size_t at, int code,
                       const char *fmt, ...)
{
    struct fmt_json_error *e = r->error;
    va_list ap;

    if (e->code)
        return NULL;
    e->code = code;
    e->position = at;
    e->line = 1;
    e->column = 1;
    for (size_t i = 0; i < at && i < r->len; i++) {
        if (r->text[i] == '\n') {
            e->line++;
            e->column = 1;
        } else if ((r->text[i] & 0xc0) != 0x80) {
            e->column++;      /* columns count characters, as jansson's do */
        }
    }
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof(e->text), fmt, ap);
    va_end(ap);
    return NULL;
}

static json_t *no_memory(struct json_reader *r)
{
    return fail_at(r, r->pos, -ENOMEM, "out of memory");
}

/* Records that a callback stopped the parse with its code rc; returns -1. */
static int stopped_by_caller(struct json_reader *r, int rc)
{
    fail_at(r, r->pos, rc, "stopped by the caller");
    r->error->stopped = true;
    return -1;
}

/* One level deeper into a container: -1 (error recorded) past
 * FMT_JSON_MAX_DEPTH; the caller steps back with r->depth--. */
static int go_deeper(struct json_reader *r)
{
    if (r->depth >= FMT_JSON_MAX_DEPTH) {
        fail_at(r, r->pos, -EINVAL, "maximum parsing depth reached");
        return -1;
    }
    r->depth++;
    return 0;
}

static void skip_space(struct json_reader *r)
{
    while (r->pos < r->len) {
        unsigned char c = r->text[r->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        r->pos++;
    }
}

/* Makes room for need more bytes after used in the scratch buffer. */
static int scratch_reserve(struct json_reader *r, size_t used, size_t need)
{
    char *grown = s3m_grow(r->scratch, &r->scratch_cap, used + need);

    if (!grown)
        return -ENOMEM;
    r->scratch = grown;
    return 0;
}

static int hex4(const unsigned char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int d = s3m_hex_value(p[i]);
        if (d < 0)
            return -1;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *dst, uint32_t cp)
{
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xc0 | cp >> 6);
        dst[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xe0 | cp >> 12);
        dst[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        dst[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    dst[0] = (char)(0xf0 | cp >> 18);
    dst[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    dst[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    dst[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes the escape at r->pos (just after the backslash) into the scratch
 * buffer at *used. */
static int take_escape(struct json_reader *r, size_t *used)
{
    static const char simple[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
    const unsigned char *p = r->text + r->pos;
    size_t left = r->len - r->pos;
    uint32_t cp, low;

    if (scratch_reserve(r, *used, 4)) {
        no_memory(r);
        return -1;
    }
    if (left >= 1 && p[0] != 'u') {
        for (size_t i = 0; simple[i]; i += 2) {
            if (p[0] == (unsigned char)simple[i]) {
                r->scratch[(*used)++] = simple[i + 1];
                r->pos++;
                return 0;
            }
        }
    }
    if (left < 5 || p[0] != 'u' || hex4(p + 1, &cp)) {
        fail_at(r, r->pos - 1, -EINVAL, "invalid escape");
        return -1;
    }
    r->pos += 5;
    if (cp >= 0xdc00 && cp <= 0xdfff) {
        fail_at(r, r->pos - 6, -EINVAL, "invalid Unicode '\\u%04X'", cp);
        return -1;
    }
    if (cp >= 0xd800 && cp <= 0xdbff) {
        p = r->text + r->pos;
        left = r->len - r->pos;
        if (left < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &low) ||
            low < 0xdc00 || low > 0xdfff) {
            fail_at(r, r->pos - 6, -EINVAL, "invalid Unicode '\\u%04X'", cp);
            return -1;
        }
        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        r->pos += 6;
    }
    *used += put_utf8(r->scratch + *used, cp);
    return 0;
}

/*
 * Reads the string whose opening quote is at r->pos. Sets *out and *out_len
 * to its bytes: inside the text when it has no escapes, else in the scratch
 * buffer (valid until the next string). Returns 0 or -1 (error recorded).
 */
static int read_string(struct json_reader *r, const char **out,
                       size_t *out_len)
{
    const unsigned char *text = r->text;
    size_t start = ++r->pos, run = start, used = 0;
    bool escaped = false;

    for (;;) {
        r->pos += fmt_json_plain_span(text + r->pos, r->len - r->pos);
        if (r->pos >= r->len) {
            fail_at(r, r->pos, -EINVAL, "premature end of input in a string");
            return -1;
        }
        unsigned char c = text[r->pos];
        if (c >= 0x80) {
            uint32_t cp;
            size_t step = fmt_utf8_next(text + r->pos, r->len - r->pos, &cp);
            if (step == 0) {
                fail_at(r, r->pos, -EINVAL, "unable to decode byte 0x%02x", c);
                return -1;
            }
            r->pos += step;
            continue;
        }
        if (c < 0x20) {
            fail_at(r, r->pos, -EINVAL, "control character 0x%02x in a string",
                    c);
            return -1;
        }
        /* '"' or '\\': copy the run before it when escapes are in play */
        if (c == '\\' || escaped) {
            size_t n = r->pos - run;
            if (scratch_reserve(r, used, n + 1)) {
                no_memory(r);
                return -1;
            }
            memcpy(r->scratch + used, text + run, n);
            used += n;
        }
        if (c == '"')
            break;
        escaped = true;
        r->pos++;
        if (take_escape(r, &used))
            return -1;
        run = r->pos;
    }
    if (escaped) {
        *out = r->scratch ? r->scratch : "";
        *out_len = used;
    } else {
        *out = (const char *)text + start;
        *out_len = r->pos - start;
    }
    r->pos++;                 /* the closing quote */
    return 0;
}

static json_t *parse_string(struct json_reader *r)
{
    const char *s;
    size_t n;
    json_t *value;

    if (read_string(r, &s, &n))
        return NULL;
    value = json_stringn_nocheck(s, n);
    return value ? value : no_memory(r);
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static size_t skip_digits(struct json_reader *r)
{
    size_t from = r->pos;
    while (r->pos < r->len && is_digit(r->text[r->pos]))
        r->pos++;
    return r->pos - from;
}

static json_t *parse_number(struct json_reader *r)
{
    size_t start = r->pos, n;
    bool integer = true;
    char small[64], *copy = small;
    json_t *value;

    if (r->text[r->pos] == '-')
        r->pos++;
    if (r->pos < r->len && r->text[r->pos] == '0')
        r->pos++;
    else if (skip_digits(r) == 0)
        return fail_at(r, start, -EINVAL, "invalid number");
    if (r->pos < r->len && r->text[r->pos] == '.') {
        integer = false;
        r->pos++;
        if (skip_digits(r) == 0)
            return fail_at(r, start, -EINVAL, "invalid number");
    }
    if (r->pos < r->len && (r->text[r->pos] | 0x20) == 'e') {
        integer = false;
        r->pos++;
        if (r->pos < r->len && (r->text[r->pos] == '+' ||
                                r->text[r->pos] == '-'))
            r->pos++;
        if (skip_digits(r) == 0)
            return fail_at(r, start, -EINVAL, "invalid number");
    }
    n = r->pos - start;
    if (n >= sizeof(small)) {
        copy = s3m_malloc(n + 1);
        if (!copy)
            return no_memory(r);
    }
    memcpy(copy, r->text + start, n);
    copy[n] = '\0';
    long long v = 0;
    if (integer) {
        errno = 0;
        v = strtoll(copy, NULL, 10);
        integer = errno != ERANGE;    /* beyond 64 bits: a real, as in JS */
    }
    double d = integer ? 0 : strtod(copy, NULL);
    if (!integer && isinf(d))
        value = fail_at(r, start, -EINVAL, "real number overflow");
    else if (!(value = integer ? json_integer(v) : json_real(d)))
        no_memory(r);
    if (copy != small)
        free(copy);
    return value;
}

static json_t *parse_literal(struct json_reader *r, const char *word,
                             json_t *value)
{
    size_t n = strlen(word);

    if (r->len - r->pos < n || memcmp(r->text + r->pos, word, n)) {
        json_decref(value);
        return fail_at(r, r->pos, -EINVAL, "invalid token");
    }
    r->pos += n;
    return value;
}

/* Moves past c (after white space) or fails with what was expected. */
static int expect(struct json_reader *r, unsigned char c, const char *what)
{
    skip_space(r);
    if (r->pos < r->len && r->text[r->pos] == c) {
        r->pos++;
        return 0;
    }
    fail_at(r, r->pos, -EINVAL, r->pos < r->len ? "%s expected"
                                               : "premature end of input, "
                                                 "%s expected", what);
    return -1;
}

/* After a member or element: true at the closing byte, false after a
 * comma, and -1 on anything else. */
static int end_or_comma(struct json_reader *r, unsigned char close,
                        const char *what)
{
    skip_space(r);
    if (r->pos < r->len && r->text[r->pos] == close) {
        r->pos++;
        return 1;
    }
    return expect(r, ',', what) ? -1 : 0;
}

/* True when the member named key of the top-level object is the one whose
 * members go to member_fn one by one. */
static bool streams(const struct json_reader *r, const char *key,
                    size_t key_len)
{
    return r->streamed && r->depth == 1 && strlen(r->streamed) == key_len &&
           memcmp(r->streamed, key, key_len) == 0;
}

static json_t *parse_nested(struct json_reader *r, bool object, bool stream);

/* Moves past the opening byte; true (and past close) when the container
 * is empty. */
static bool open_empty(struct json_reader *r, unsigned char close)
{
    r->pos++;
    skip_space(r);
    if (r->pos < r->len && r->text[r->pos] == close) {
        r->pos++;
        return true;
    }
    return false;
}

/* Reads a member name: its bytes, in the text or in the scratch buffer
 * (which the value takes again). NULL on error (recorded). */
static const char *read_name_bytes(struct json_reader *r, size_t *name_len)
{
    const char *name;
    size_t at;

    skip_space(r);
    at = r->pos;
    if (r->pos >= r->len || r->text[r->pos] != '"') {
        fail_at(r, r->pos, -EINVAL, "string or '}' expected");
        return NULL;
    }
    if (read_string(r, &name, name_len))
        return NULL;
    if (memchr(name, '\0', *name_len)) {
        fail_at(r, at, -EINVAL, "NUL byte in object key not supported");
        return NULL;
    }
    return name;
}

/* Reads a member name, NUL-ended in a new string (the caller frees it). */
static char *read_key(struct json_reader *r, size_t *key_len)
{
    const char *name = read_name_bytes(r, key_len);
    char *copy = name ? s3m_strndup(name, *key_len) : NULL;

    if (name && !copy)
        no_memory(r);
    return copy;
}

/* Reads a flat member's name into r->name (grown as needed), NUL-ended;
 * valid until the next flat member (nested objects use read_key). */
static const char *read_name(struct json_reader *r, size_t *name_len)
{
    const char *name = read_name_bytes(r, name_len);

    if (!name)
        return NULL;
    char *copy = s3m_grow(r->name, &r->name_cap, *name_len + 1);
    if (!copy) {
        no_memory(r);
        return NULL;
    }
    r->name = copy;
    memcpy(r->name, name, *name_len);
    r->name[*name_len] = '\0';
    return r->name;
}

/* After the top-level value: only white space may follow. 0, or -1 with
 * the error recorded. */
static int expect_end(struct json_reader *r)
{
    skip_space(r);
    if (r->pos < r->len) {
        fail_at(r, r->pos, -EINVAL, "end of input expected");
        return -1;
    }
    return 0;
}

static int flat_object(struct json_reader *r, fmt_json_flat_fn fn, void *ctx);

/* A member of the streamed object whose value is an object, given to
 * r->flat member by member. Returns 0 or -1 (error recorded). */
static int stream_flat(struct json_reader *r, const char *key, size_t key_len)
{
    int rc = r->flat->begin(r->member_ctx, key, key_len);

    if (rc == 0) {
        if (go_deeper(r))
            return -1;
        rc = flat_object(r, r->flat->field, r->member_ctx);
        r->depth--;
        if (rc)
            return -1;
        rc = r->flat->end(r->member_ctx);
    }
    return rc ? stopped_by_caller(r, rc) : 0;
}

/* One "name": value into object, or to member_fn when stream is set.
 * Returns 0 or -1 (error recorded). */
static int parse_member(struct json_reader *r, json_t *object, bool stream)
{
    size_t key_len;
    char *key = read_key(r, &key_len);
    json_t *member;
    int rc;

    if (!key)
        return -1;
    if (expect(r, ':', "':'")) {
        free(key);
        return -1;
    }
    skip_space(r);
    if (stream && r->flat && r->pos < r->len && r->text[r->pos] == '{') {
        rc = stream_flat(r, key, key_len);
        free(key);
        return rc;
    }
    if (streams(r, key, key_len) && r->pos < r->len && r->text[r->pos] == '{')
        member = parse_nested(r, true, true);
    else
        member = parse_value(r);
    if (!member) {
        free(key);
        return -1;
    }
    if (stream) {
        rc = r->member_fn(r->member_ctx, key, key_len, member);
        json_decref(member);
        if (rc)
            stopped_by_caller(r, rc);
    } else {
        rc = json_object_setn_new_nocheck(object, key, key_len, member);
        if (rc)
            no_memory(r);
    }
    free(key);
    return rc ? -1 : 0;
}

/* Members go into the new object, or to member_fn when stream is set (the
 * object then stays empty). */
static json_t *parse_object(struct json_reader *r, bool stream)
{
    json_t *object = json_object();
    int done = 1;

    if (!object)
        return no_memory(r);
    if (!open_empty(r, '}')) {
        do {
            if (parse_member(r, object, stream)) {
                done = -1;
                break;
            }
            done = end_or_comma(r, '}', "',' or '}'");
        } while (done == 0);
    }
    if (done > 0)
        return object;
    json_decref(object);
    return NULL;
}

static json_t *parse_array(struct json_reader *r)
{
    json_t *array = json_array();
    int done = 1;

    if (!array)
        return no_memory(r);
    if (!open_empty(r, ']')) {
        do {
            json_t *element = parse_value(r);
            if (!element || json_array_append_new(array, element)) {
                if (element)
                    no_memory(r);
                done = -1;
                break;
            }
            done = end_or_comma(r, ']', "',' or ']'");
        } while (done == 0);
    }
    if (done > 0)
        return array;
    json_decref(array);
    return NULL;
}

static json_t *parse_nested(struct json_reader *r, bool object, bool stream)
{
    json_t *value;

    if (go_deeper(r))
        return NULL;
    value = object ? parse_object(r, stream) : parse_array(r);
    r->depth--;
    return value;
}

static json_t *parse_value(struct json_reader *r)
{
    skip_space(r);
    if (r->pos >= r->len)
        return fail_at(r, r->pos, -EINVAL, "premature end of input");
    switch (r->text[r->pos]) {
    case '{': return parse_nested(r, true, false);
    case '[': return parse_nested(r, false, false);
    case '"': return parse_string(r);
    case 't': return parse_literal(r, "true", json_true());
    case 'f': return parse_literal(r, "false", json_false());
    case 'n': return parse_literal(r, "null", json_null());
    default:
        if (r->text[r->pos] == '-' || is_digit(r->text[r->pos]))
            return parse_number(r);
        return fail_at(r, r->pos, -EINVAL, "invalid token");
    }
}

/* One member of a flat object to fn. Returns 0 or -1 (error recorded). */
static int flat_member(struct json_reader *r, fmt_json_flat_fn fn, void *ctx)
{
    size_t key_len, len;
    const char *key = read_name(r, &key_len);
    const char *bytes;
    json_t *value = NULL;
    int rc = -1;

    if (!key)
        return -1;
    if (expect(r, ':', "':'"))
        goto out;
    skip_space(r);
    if (r->pos < r->len && r->text[r->pos] == '"') {
        if (read_string(r, &bytes, &len))
            goto out;
        rc = fn(ctx, key, key_len, bytes, len, NULL);
    } else {
        if (!(value = parse_value(r)))
            goto out;
        rc = fn(ctx, key, key_len, NULL, 0, value);
    }
    if (rc)
        rc = stopped_by_caller(r, rc);
out:
    json_decref(value);
    return rc;
}

/* The object whose '{' is at r->pos, member by member to fn. Returns 0 or
 * -1 (error recorded). */
static int flat_object(struct json_reader *r, fmt_json_flat_fn fn, void *ctx)
{
    int done = open_empty(r, '}') ? 1 : 0;

    while (done == 0) {
        done = flat_member(r, fn, ctx) ? -1
               : end_or_comma(r, '}', "',' or '}'");
    }
    return done > 0 ? 0 : -1;
}

int fmt_json_parse_flat(const char *text, size_t len, fmt_json_flat_fn fn,
                        void *ctx, struct fmt_json_error *error)
{
    struct json_reader r = {.text = (const unsigned char *)text, .len = len,
                            .error = error, .depth = 1};
    int done;

    memset(error, 0, sizeof(*error));
    skip_space(&r);
    if (r.pos >= r.len || r.text[r.pos] != '{')
        return 1;
    done = flat_object(&r, fn, ctx) || expect_end(&r) ? -1 : 1;
    free(r.scratch);
    free(r.name);
    return done > 0 ? 0 : -1;
}

json_t *fmt_json_parse(const char *text, size_t len,
                       struct fmt_json_error *error)
{
    return fmt_json_parse_streamed(text, len, NULL, NULL, NULL, error);
}

static json_t *parse_document(struct json_reader *r)
{
    json_t *value;

    memset(r->error, 0, sizeof(*r->error));
    value = parse_value(r);
    if (value && expect_end(r)) {
        json_decref(value);
        value = NULL;
    }
    free(r->scratch);
    free(r->name);
    return value;
}

json_t *fmt_json_parse_streamed(const char *text, size_t len,
                                const char *streamed, fmt_json_member_fn fn,
                                void *ctx, struct fmt_json_error *error)
{
    struct json_reader r = {.text = (const unsigned char *)text, .len = len,
                            .error = error, .streamed = fn ? streamed : NULL,
                            .member_fn = fn, .member_ctx = ctx};
    return parse_document(&r);
}

json_t *fmt_json_parse_streamed_flat(const char *text, size_t len,
                                     const char *streamed,
                                     const struct fmt_json_flat_stream *fns,
                                     void *ctx, struct fmt_json_error *error)
{
    struct json_reader r = {.text = (const unsigned char *)text, .len = len,
                            .error = error, .streamed = streamed,
                            .member_fn = fns->other, .flat = fns,
                            .member_ctx = ctx};
    return parse_document(&r);
}
