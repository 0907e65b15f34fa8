/*
 * fuzz_path.c - libFuzzer target for path.h (key <-> path rules), UTF-8
 * validation, and the store's key order: put, count, list (with and without
 * a delimiter, paginated 3 at a time) and list_level, each checked against
 * a plain sorted array of the keys put (the model). Each segment is also
 * run through the s3db.js metadata value encoding (format.h), which must
 * decode back to it.
 *
 * Input: byte 0 the delimiter (0 means '/'), byte 1 options (bit 0: also
 * put prefix + each segment; bit 1: the store lists after a start_after
 * taken from the keys; bits 2-7: 16 * n is the directory key length given
 * to s3m_path_check_new), then NUL-separated segments: the first is the
 * listing prefix, the others are keys (at most 1100 bytes, so over-long
 * keys are tried too).
 */
#include "fuzz_common.h"

#include <stdbool.h>

#include "s3mem/format.h"
#include "s3mem/path.h"
#include "s3mem/store.h"
#include "s3mem/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MAX_SEGMENTS 200
#define SEGMENT_MAX 1100

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* ---- reference rules, written from path.h and util.h ------------------- */

static bool reference_utf8(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (i + n > len)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n;
    }
    return true;
}

static bool reference_segment_ok(const char *name, size_t len)
{
    if (len == 0 || len > 255)
        return false;
    if ((len == 1 && name[0] == '.') ||
        (len == 2 && name[0] == '.' && name[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++)
        if (name[i] == '/' || name[i] == '\0')
            return false;
    return true;
}

static const char *reference_unshowable(const char *rest, size_t len,
                                        unsigned long long body_size)
{
    if (len == 0)
        return NULL;
    bool marker = rest[len - 1] == '/';
    size_t end = marker ? len - 1 : len, start = 0;
    for (;;) {
        size_t stop = start;
        while (stop < end && rest[stop] != '/')
            stop++;
        size_t seg = stop - start;
        if (seg == 0)
            return "empty segment";
        if (seg > 255)
            return "segment over 255 bytes";
        if ((seg == 1 && rest[start] == '.') ||
            (seg == 2 && rest[start] == '.' && rest[start + 1] == '.'))
            return "'.' or '..' segment";
        if (stop == end)
            break;
        start = stop + 1;
    }
    return marker && body_size > 0 ? "directory marker with a body" : NULL;
}

static void check_path_rules(const char *name, size_t len, size_t dir_key_len)
{
    bool utf8 = reference_utf8((const unsigned char *)name, len);
    FUZZ_CHECK(s3m_utf8_valid(name, len) == utf8);
    bool ok = reference_segment_ok(name, len);
    FUZZ_CHECK(s3m_path_segment_ok(name, len) == ok);
    for (int is_dir = 0; is_dir < 2; is_dir++) {
        int expected = len > 255 ? -ENAMETOOLONG
                       : !ok     ? -EINVAL
                       : !utf8   ? -EILSEQ
                       : dir_key_len + len + (size_t)is_dir > S3M_KEY_MAX
                           ? -ENAMETOOLONG
                           : 0;
        FUZZ_CHECK(s3m_path_check_new(name, len, dir_key_len, is_dir) ==
                   expected);
    }
    if (!memchr(name, '\0', len)) {
        for (unsigned long long body = 0; body < 2; body++) {
            const char *got = s3m_path_unshowable(name, len, body);
            const char *want = reference_unshowable(name, len, body);
            FUZZ_CHECK((got == NULL) == (want == NULL));
            FUZZ_CHECK(!got || strcmp(got, want) == 0);
        }
    }
}

/* s3db.js metadata values (format.h): decoding any bytes is safe, and a
 * UTF-8 value that encoding changes decodes back to itself. */
static void check_value_encoding(const char *value, size_t len)
{
    char *decoded, *encoded, *back;
    size_t decoded_len, encoded_len, back_len;
    bool is_null;

    FUZZ_CHECK(s3m_format_s3db_value_decode(value, len, &decoded, &decoded_len,
                                            &is_null) == 0);
    FUZZ_CHECK(decoded[decoded_len] == '\0');
    FUZZ_CHECK(is_null == (len == 4 && memcmp(value, "null", 4) == 0));
    free(decoded);

    FUZZ_CHECK(s3m_format_s3db_value_encode(value, len, &encoded,
                                            &encoded_len) == 0);
    FUZZ_CHECK(encoded[encoded_len] == '\0');
    for (size_t i = 0; i < encoded_len; i++)
        FUZZ_CHECK(encoded[i] >= 0x20 && encoded[i] <= 0x7e);
    bool changed = encoded_len != len || memcmp(encoded, value, len) != 0;
    if (changed && reference_utf8((const unsigned char *)value, len)) {
        FUZZ_CHECK(s3m_format_s3db_value_decode(encoded, encoded_len, &back,
                                                &back_len, &is_null) == 0);
        FUZZ_CHECK(back_len == len && memcmp(back, value, len) == 0);
        free(back);
    }
    free(encoded);
}

/* ---- the model: sorted distinct keys ------------------------------------ */

struct model {
    char *keys[2 * MAX_SEGMENTS + 2];
    size_t count;
};

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void model_add(struct model *model, const char *key)
{
    for (size_t i = 0; i < model->count; i++)
        if (strcmp(model->keys[i], key) == 0)
            return;
    model->keys[model->count] = strdup(key);
    FUZZ_CHECK(model->keys[model->count] != NULL);
    model->count++;
}

static bool starts_with(const char *text, const char *prefix)
{
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

/* Expected entries of a delimited listing: keys and common prefixes, as
 * new strings in *out; returns the count. */
static size_t expected_delimited(const struct model *model, const char *prefix,
                                 char delimiter, char **out)
{
    size_t n = 0, prefix_len = strlen(prefix);
    for (size_t i = 0; i < model->count; i++) {
        const char *key = model->keys[i];
        if (!starts_with(key, prefix))
            continue;
        const char *cut = delimiter ? strchr(key + prefix_len, delimiter) : NULL;
        char *entry = cut ? strndup(key, (size_t)(cut - key) + 1) : strdup(key);
        FUZZ_CHECK(entry != NULL);
        if (n > 0 && strcmp(out[n - 1], entry) == 0) {
            free(entry);
            continue;
        }
        out[n++] = entry;
    }
    return n;
}

/* ---- store checks ---------------------------------------------------------- */

/* Lists all pages, 3 keys at a time, appending keys and prefixes in byte
 * order to got (new strings). Returns the count. */
static size_t list_pages(struct s3m_store *store, const char *prefix,
                         char delimiter, const char *start_after, char **got,
                         size_t cap)
{
    struct s3m_list_request req = {.prefix = prefix, .delimiter = delimiter,
                                   .max_keys = 3, .start_after = start_after};
    char *token = NULL;
    size_t n = 0, pages = 0;

    for (;;) {
        struct s3m_list_result result;
        req.continuation = token;
        FUZZ_CHECK(s3m_store_list(store, &req, &result) == 0);
        FUZZ_CHECK(result.key_count + result.prefix_count <= 3);
        FUZZ_CHECK(delimiter || result.prefix_count == 0);
        size_t k = 0, p = 0;
        while (k < result.key_count || p < result.prefix_count) {
            char *next;
            if (p == result.prefix_count ||
                (k < result.key_count &&
                 strcmp(result.keys[k], result.prefixes[p]) < 0))
                next = result.keys[k++];
            else
                next = result.prefixes[p++];
            FUZZ_CHECK(starts_with(next, prefix));
            FUZZ_CHECK(n < cap);
            got[n] = strdup(next);
            FUZZ_CHECK(got[n] != NULL);
            /* byte order, each once, across pages too */
            FUZZ_CHECK(n == 0 || strcmp(got[n - 1], got[n]) < 0);
            n++;
        }
        free(token);
        token = NULL;
        FUZZ_CHECK(result.truncated == (result.next_continuation != NULL));
        if (result.truncated) {
            FUZZ_CHECK(result.key_count + result.prefix_count == 3);
            token = strdup(result.next_continuation);
            FUZZ_CHECK(token != NULL);
        }
        s3m_list_result_release(&result);
        FUZZ_CHECK(++pages <= cap + 2);
        if (!token)
            break;
    }
    return n;
}

static void check_same_lists(char **got, size_t got_count, char **want,
                             size_t want_count)
{
    FUZZ_CHECK(got_count == want_count);
    for (size_t i = 0; i < want_count; i++)
        FUZZ_CHECK(strcmp(got[i], want[i]) == 0);
}

static void free_strings(char **items, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(items[i]);
}

struct level_seen {
    char *names[2 * MAX_SEGMENTS + 2];
    bool is_prefix[2 * MAX_SEGMENTS + 2];
    bool shadowed[2 * MAX_SEGMENTS + 2];
    bool has_info[2 * MAX_SEGMENTS + 2];
    size_t count;
};

static int collect_level(void *ctx, const struct s3m_level_entry *entry)
{
    struct level_seen *seen = ctx;
    FUZZ_CHECK(seen->count < 2 * MAX_SEGMENTS + 2);
    FUZZ_CHECK(entry->name_len > 0 || entry->is_prefix);
    seen->names[seen->count] = strndup(entry->name, entry->name_len);
    FUZZ_CHECK(seen->names[seen->count] != NULL);
    FUZZ_CHECK(strlen(seen->names[seen->count]) == entry->name_len);
    seen->is_prefix[seen->count] = entry->is_prefix;
    seen->shadowed[seen->count] = entry->shadowed;
    seen->has_info[seen->count] = entry->info != NULL;
    seen->count++;
    return 0;
}

static bool model_has(const struct model *model, const char *key)
{
    for (size_t i = 0; i < model->count; i++)
        if (strcmp(model->keys[i], key) == 0)
            return true;
    return false;
}

static bool model_has_prefix(const struct model *model, const char *prefix)
{
    for (size_t i = 0; i < model->count; i++)
        if (starts_with(model->keys[i], prefix))
            return true;
    return false;
}

static void check_level(struct s3m_store *store, const struct model *model,
                        const char *prefix, char delimiter)
{
    struct level_seen *seen = calloc(1, sizeof(*seen));
    size_t prefix_len = strlen(prefix), n = 0;
    char *last_group = NULL;

    FUZZ_CHECK(seen != NULL);
    FUZZ_CHECK(s3m_store_list_level(store, prefix, delimiter, collect_level,
                                    seen) == 0);
    for (size_t i = 0; i < model->count; i++) {
        const char *key = model->keys[i];
        if (!starts_with(key, prefix) || strlen(key) == prefix_len)
            continue;
        const char *rest = key + prefix_len;
        const char *cut = strchr(rest, delimiter);
        char name[S3M_KEY_MAX + 2];
        if (cut) {
            size_t group_len = (size_t)(cut - key) + 1;
            if (last_group && strlen(last_group) == group_len &&
                strncmp(last_group, key, group_len) == 0)
                continue;
            free(last_group);
            last_group = strndup(key, group_len);
            FUZZ_CHECK(last_group != NULL);
            FUZZ_CHECK(n < seen->count);
            memcpy(name, rest, (size_t)(cut - rest));
            name[cut - rest] = '\0';
            FUZZ_CHECK(strcmp(seen->names[n], name) == 0);
            FUZZ_CHECK(seen->is_prefix[n]);
            FUZZ_CHECK(seen->has_info[n] == model_has(model, last_group));
        } else {
            FUZZ_CHECK(n < seen->count);
            FUZZ_CHECK(strcmp(seen->names[n], rest) == 0);
            FUZZ_CHECK(!seen->is_prefix[n]);
            FUZZ_CHECK(seen->has_info[n]);
            size_t key_len = strlen(key);
            memcpy(name, key, key_len);
            name[key_len] = delimiter;
            name[key_len + 1] = '\0';
            FUZZ_CHECK(seen->shadowed[n] == model_has_prefix(model, name));
        }
        n++;
    }
    FUZZ_CHECK(n == seen->count);
    free(last_group);
    free_strings(seen->names, seen->count);
    free(seen);
}

static void check_store(const uint8_t *data, size_t size, char delimiter,
                        unsigned options)
{
    struct s3m_store_config config = {.bucket = "fuzz"};
    struct s3m_store *store = s3m_store_new(&config);
    struct model model = {0};
    char prefix[S3M_KEY_MAX + 1] = "";
    char key[2 * SEGMENT_MAX + 2];
    const char *start_after = NULL;
    size_t segment = 0;

    FUZZ_CHECK(store != NULL);
    for (size_t at = 0; at <= size && segment < MAX_SEGMENTS; segment++) {
        const uint8_t *end = memchr(data + at, '\0', size - at);
        size_t len = end ? (size_t)(end - (data + at)) : size - at;
        size_t used = len > SEGMENT_MAX ? SEGMENT_MAX : len;
        if (segment == 0) {
            if (used > S3M_KEY_MAX)
                used = S3M_KEY_MAX;
            memcpy(prefix, data + at, used);
            prefix[used] = '\0';
        } else {
            for (int with_prefix = 0; with_prefix < 2; with_prefix++) {
                size_t plen = with_prefix ? strlen(prefix) : 0;
                if (with_prefix && !(options & 1))
                    break;
                memcpy(key, prefix, plen);
                memcpy(key + plen, data + at, used);
                key[plen + used] = '\0';
                size_t key_len = plen + used;
                int want = key_len == 0           ? -EINVAL
                           : key_len > S3M_KEY_MAX ? -ENAMETOOLONG
                                                   : 0;
                FUZZ_CHECK(s3m_store_put(store, key, key, segment % 3, NULL,
                                         0) == want);
                if (want == 0) {
                    model_add(&model, key);
                    if ((options & 2) && !start_after && segment > 1)
                        start_after = model.keys[model.count - 1];
                }
            }
        }
        at += len + 1;
    }
    qsort(model.keys, model.count, sizeof(model.keys[0]), compare_keys);

    FUZZ_CHECK(s3m_store_count(store, "") == model.count);
    size_t under = 0;
    for (size_t i = 0; i < model.count; i++)
        under += starts_with(model.keys[i], prefix);
    FUZZ_CHECK(s3m_store_count(store, prefix) == under);
    FUZZ_CHECK(s3m_store_has_prefix(store, prefix) == (under > 0));

    size_t cap = model.count + 1;
    char **got = calloc(cap, sizeof(*got));
    char **want = calloc(cap, sizeof(*want));
    FUZZ_CHECK(got && want);

    /* no delimiter: every key under the prefix, each once, in order */
    size_t got_count = list_pages(store, prefix, 0, NULL, got, cap);
    size_t want_count = expected_delimited(&model, prefix, 0, want);
    check_same_lists(got, got_count, want, want_count);
    free_strings(got, got_count);
    free_strings(want, want_count);

    /* with the delimiter: keys and common prefixes, each once, in order */
    got_count = list_pages(store, prefix, delimiter, NULL, got, cap);
    want_count = expected_delimited(&model, prefix, delimiter, want);
    check_same_lists(got, got_count, want, want_count);
    free_strings(got, got_count);
    free_strings(want, want_count);

    /* start_after: only keys above it */
    if (start_after) {
        got_count = list_pages(store, prefix, 0, start_after, got, cap);
        want_count = 0;
        for (size_t i = 0; i < model.count; i++)
            if (starts_with(model.keys[i], prefix) &&
                strcmp(model.keys[i], start_after) > 0)
                FUZZ_CHECK((want[want_count++] = strdup(model.keys[i])));
        check_same_lists(got, got_count, want, want_count);
        free_strings(got, got_count);
        free_strings(want, want_count);
    }
    free(got);
    free(want);

    check_level(store, &model, prefix, delimiter);

    /* every key found again; its rest (without the prefix) judged as a path */
    for (size_t i = 0; i < model.count; i++) {
        struct s3m_object_info info;
        FUZZ_CHECK(s3m_store_head(store, model.keys[i], &info) == 0);
        FUZZ_CHECK((info.mode & S_IFMT) ==
                   (model.keys[i][strlen(model.keys[i]) - 1] == '/' ? S_IFDIR
                                                                    : S_IFREG));
        s3m_object_info_release(&info);
        if (starts_with(model.keys[i], prefix))
            check_path_rules(model.keys[i] + strlen(prefix),
                             strlen(model.keys[i]) - strlen(prefix), 0);
    }
    free_strings(model.keys, model.count);
    s3m_store_free(store);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    char delimiter = data[0] ? (char)data[0] : '/';
    unsigned options = data[1];
    size_t dir_key_len = (size_t)(options >> 2) * 16;

    /* the raw bytes (NULs and all) and each segment as a name */
    check_path_rules((const char *)data + 2, size - 2, dir_key_len);
    for (size_t at = 2; at < size;) {
        const uint8_t *end = memchr(data + at, '\0', size - at);
        size_t len = end ? (size_t)(end - (data + at)) : size - at;
        check_path_rules((const char *)data + at, len, dir_key_len);
        check_value_encoding((const char *)data + at, len);
        at += len + 1;
    }
    check_store(data + 2, size - 2, delimiter, options);
    return 0;
}
