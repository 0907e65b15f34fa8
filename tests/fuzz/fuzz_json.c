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
 * "objects" as {}.
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
