/*
 * fuzz_json.c - differential libFuzzer target for src/format/json_read.c:
 * every input goes through fmt_json_parse and through jansson's json_loadb
 * (JSON_DECODE_ANY | JSON_ALLOW_NUL), and the two must agree. When both
 * accept, the values must be json_equal. Where they may differ by design
 * (json_read.c): an integer beyond 64 bits (jansson: "too big", ours: a
 * real), nesting deeper than ours allows (jansson allows more), a raw NUL
 * byte after a number or literal (jansson skips it, we refuse). Anything
 * else accepted by one and refused by the other is a finding.
 *
 * The streamed form is checked too: with the top-level member "objects"
 * streamed, the members seen one by one, gathered as the full parse
 * gathers them, must equal its "objects", and the returned root must hold
 * "objects" as {}. So must the flat stream's (fmt_json_parse_streamed_flat),
 * each object member rebuilt from its members.
 */
#include "fuzz_common.h"

#include <stdbool.h>

#include "../../src/format/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The members streamed so far, kept as the full parse keeps them (a later
 * duplicate replaces the value in place). */
static int collect_member(void *ctx, const char *key, size_t key_len,
                          json_t *value)
{
    FUZZ_CHECK(strlen(key) == key_len);
    FUZZ_CHECK(json_object_setn(ctx, key, key_len, value) == 0);
    return 0;
}

/* The flat stream gathered the same way: an object member's members into
 * a new object, set into the collection at its end. */
struct flat_collect {
    json_t *all;                   /* owned: the members gathered */
    json_t *current;               /* owned: the object being read */
    char *key;                     /* owned: its key */
    size_t key_len;
};

static int flat_begin(void *ctx, const char *key, size_t key_len)
{
    struct flat_collect *c = ctx;
    FUZZ_CHECK(strlen(key) == key_len && c->current == NULL);
    c->current = json_object();
    c->key = strndup(key, key_len);
    c->key_len = key_len;
    FUZZ_CHECK(c->current != NULL && c->key != NULL);
    return 0;
}

static int flat_field(void *ctx, const char *key, size_t key_len,
                      const char *bytes, size_t len, json_t *value)
{
    struct flat_collect *c = ctx;
    json_t *member = value ? json_incref(value) : json_stringn(bytes, len);
    FUZZ_CHECK(c->current != NULL && member != NULL);
    FUZZ_CHECK(json_object_setn_new(c->current, key, key_len, member) == 0);
    return 0;
}

static int flat_end(void *ctx)
{
    struct flat_collect *c = ctx;
    FUZZ_CHECK(json_object_setn_new(c->all, c->key, c->key_len,
                                    c->current) == 0);
    free(c->key);
    c->key = NULL;
    c->current = NULL;
    return 0;
}

static int flat_other(void *ctx, const char *key, size_t key_len,
                      json_t *value)
{
    struct flat_collect *c = ctx;
    return collect_member(c->all, key, key_len, value);
}

static bool has_duplicate_objects_member(const uint8_t *data, size_t size)
{
    /* "objects" twice at any level makes the member order of the full
     * parse differ from the stream; such inputs skip the stream check */
    const char needle[] = "\"objects\"";
    const uint8_t *first = memmem(data, size, needle, sizeof(needle) - 1);
    return first && memmem(first + 1, size - (size_t)(first + 1 - data),
                           needle, sizeof(needle) - 1);
}

static void check_streamed(const uint8_t *data, size_t size, json_t *full)
{
    json_t *objects = json_is_object(full) ? json_object_get(full, "objects")
                                           : NULL;
    struct fmt_json_error error;
    json_t *root, *collected;

    if (!json_is_object(objects) || has_duplicate_objects_member(data, size))
        return;
    collected = json_object();
    FUZZ_CHECK(collected != NULL);
    root = fmt_json_parse_streamed((const char *)data, size, "objects",
                                   collect_member, collected, &error);
    FUZZ_CHECK(root != NULL);
    FUZZ_CHECK(json_equal(collected, objects));
    FUZZ_CHECK(json_is_object(json_object_get(root, "objects")));
    FUZZ_CHECK(json_object_size(json_object_get(root, "objects")) == 0);
    json_decref(collected);
    json_decref(root);

    static const struct fmt_json_flat_stream fns = {
        .begin = flat_begin, .field = flat_field, .end = flat_end,
        .other = flat_other};
    struct flat_collect flat = {.all = json_object()};
    FUZZ_CHECK(flat.all != NULL);
    root = fmt_json_parse_streamed_flat((const char *)data, size, "objects",
                                        &fns, &flat, &error);
    FUZZ_CHECK(root != NULL && flat.current == NULL);
    FUZZ_CHECK(json_equal(flat.all, objects));
    json_decref(flat.all);
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fmt_json_error ours_error;
    json_error_t theirs_error;
    json_t *ours, *theirs;

    ours = fmt_json_parse((const char *)data, size, &ours_error);
    theirs = json_loadb((const char *)data, size,
                        JSON_DECODE_ANY | JSON_ALLOW_NUL, &theirs_error);
    if (ours && theirs) {
        FUZZ_CHECK(json_equal(ours, theirs));
    } else if (theirs) {
        /* jansson 2.14 skips a raw NUL byte after a number or a literal
         * ("[true\0]" parses); ours refuses it, at that byte */
        FUZZ_CHECK(strstr(ours_error.text, "maximum parsing depth") != NULL ||
                   (ours_error.position < size &&
                    data[ours_error.position] == '\0'));
    } else if (ours) {
        FUZZ_CHECK(strstr(theirs_error.text, "too big") != NULL);
    } else {
        FUZZ_CHECK(ours_error.code == -EINVAL);
        FUZZ_CHECK(ours_error.line >= 1 && ours_error.column >= 1);
        FUZZ_CHECK(ours_error.position <= size);
    }
    if (ours && theirs)
        check_streamed(data, size, ours);
    json_decref(ours);
    json_decref(theirs);
    return 0;
}
