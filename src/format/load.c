/*
 * load.c - reads an s3db.js MemoryClient save file into a new store.
 *
 * Design note: the whole file is parsed by jansson first (a truncated file
 * fails there, with its line and column), then every object is checked and
 * put into a new store; the first bad object stops the load and the new
 * store is freed, so the caller's store is never touched by a bad file.
 * Every field is checked for its type; bodies against "size" and against
 * plain-MD5 etags (the MD5 is then handed to the store, which needn't hash
 * the body again).
 */
#include <errno.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct load_state {
    const char *path;
    struct s3m_store *store;
    const struct s3m_store_config *config;
    struct s3m_error *err;
    struct fmt_verifier *verifier;  /* owned, may be NULL: check inline */
    size_t objects;
    uint64_t body_bytes;
};

/* An etag that is not its body's MD5; etag is cut at 40 characters. */
#define ETAG_MISMATCH "etag %.40s does not match the body (md5 %s)"

/* Fails the load naming the object: "cannot load 'P': object 'K': ...".
 * Returns the negative errno. */
__attribute__((format(printf, 4, 0)))
static int object_failure(struct load_state *state, const char *shown, int code,
                          const char *format, va_list args)
{
    char detail[384];
    vsnprintf(detail, sizeof(detail), format, args);
    return s3m_error_set(state->err, code, "cannot load '%s': object '%s': %s",
                         state->path, shown, detail);
}

__attribute__((format(printf, 4, 5)))
static int object_failure_of(struct load_state *state, const char *shown,
                             int code, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    int rc = object_failure(state, shown, code, format, args);
    va_end(args);
    return rc;
}

/* Fails the load with the verifier's first mismatch when it found one:
 * that object came before anything the parser is at. Returns -EINVAL, or 0
 * when every body checked so far matched (the verifier is done then). */
static int verified_mismatch(struct load_state *state)
{
    struct fmt_verify_failure failure;
    if (!state->verifier || !fmt_verifier_finish(state->verifier, &failure))
        return 0;
    return object_failure_of(state, failure.shown, EINVAL, ETAG_MISMATCH,
                             failure.etag, failure.actual);
}

/* object_failure, unless the verifier found an earlier mismatch: that one
 * is reported instead, as a check in file order would have. */
__attribute__((format(printf, 4, 5)))
static int object_error(struct load_state *state, const char *shown, int code,
                        const char *format, ...)
{
    int rc = verified_mismatch(state);
    if (rc)
        return rc;
    va_list args;
    va_start(args, format);
    rc = object_failure(state, shown, code, format, args);
    va_end(args);
    return rc;
}

/* Member name of obj, as a string or null/absent. Returns 0 and sets *text
 * (NULL when absent or null), or 1 when it has another type. */
static int optional_string(const json_t *obj, const char *name,
                           const json_t **text)
{
    const json_t *value = json_object_get(obj, name);

    *text = NULL;
    if (!value || json_is_null(value))
        return 0;
    if (!json_is_string(value))
        return 1;
    *text = value;
    return 0;
}

/* Integer member in [0, max], or absent/null (*present false). */
static int optional_integer(const json_t *obj, const char *name,
                            json_int_t max, bool *present, json_int_t *number)
{
    const json_t *value = json_object_get(obj, name);

    *present = false;
    if (!value || json_is_null(value))
        return 0;
    if (!json_is_integer(value) || json_integer_value(value) < 0 ||
        json_integer_value(value) > max)
        return 1;
    *present = true;
    *number = json_integer_value(value);
    return 0;
}

static bool has_nul(const json_t *text)
{
    return strlen(json_string_value(text)) != json_string_length(text);
}

/* New bytes of a base64 JSON string, or NULL: -EINVAL (bad) or -ENOMEM. */
static unsigned char *decode_base64(const json_t *text, size_t *len, int *rc)
{
    size_t text_len = json_string_length(text);
    unsigned char *bytes = s3m_malloc(text_len / 4 * 3 + 4);

    if (!bytes) {
        *rc = -ENOMEM;
        return NULL;
    }
    if (s3m_base64_decode(json_string_value(text), text_len, bytes, len)) {
        free(bytes);
        *rc = -EINVAL;
        return NULL;
    }
    bytes[*len] = '\0';
    *rc = 0;
    return bytes;
}

/* Metadata from "metadataBase64" ([[name64, value64], ...]) onto *meta
 * (private: built in place). */
static int exact_metadata(struct load_state *state, const char *shown,
                          const json_t *pairs, struct s3m_meta **meta)
{
    size_t index;
    json_t *pair;

    if (!json_is_array(pairs))
        return object_error(state, shown, EINVAL,
                            "\"metadataBase64\" is not an array");
    json_array_foreach(pairs, index, pair) {
        const json_t *name64 = json_array_get(pair, 0);
        const json_t *value64 = json_array_get(pair, 1);
        unsigned char *name, *value;
        size_t name_len, value_len;
        int rc;

        if (!json_is_array(pair) || json_array_size(pair) != 2 ||
            !json_is_string(name64) || !json_is_string(value64))
            return object_error(state, shown, EINVAL,
                                "\"metadataBase64\" entry %zu is not a pair "
                                "of strings", index);
        name = decode_base64(name64, &name_len, &rc);
        if (!name)
            return rc == -ENOMEM
                ? object_error(state, shown, ENOMEM, "out of memory")
                : object_error(state, shown, EINVAL,
                               "\"metadataBase64\" entry %zu is not base64",
                               index);
        value = decode_base64(value64, &value_len, &rc);
        if (!value) {
            free(name);
            return rc == -ENOMEM
                ? object_error(state, shown, ENOMEM, "out of memory")
                : object_error(state, shown, EINVAL,
                               "\"metadataBase64\" entry %zu is not base64",
                               index);
        }
        if (name_len == 0 || memchr(name, '\0', name_len)) {
            free(name);
            free(value);
            return object_error(state, shown, EINVAL,
                                "\"metadataBase64\" entry %zu has an empty "
                                "name or one with NUL", index);
        }
        rc = s3m_meta_set(*meta, (const char *)name, value, value_len);
        free(name);
        free(value);
        if (rc)
            return object_error(state, shown, ENOMEM, "out of memory");
    }
    return 0;
}

/* Builds the object's metadata (content type and encoding included). */
static int build_metadata(struct load_state *state, const char *shown,
                          const json_t *obj, struct s3m_meta **out)
{
    const json_t *type, *encoding, *metadata, *exact;
    struct s3m_meta *meta;
    const char *name;
    size_t name_len;
    json_t *value;
    int rc = 0;

    if (optional_string(obj, "contentType", &type) ||
        (type && has_nul(type)))
        return object_error(state, shown, EINVAL,
                            "\"contentType\" is not a string");
    if (optional_string(obj, "contentEncoding", &encoding) ||
        (encoding && has_nul(encoding)))
        return object_error(state, shown, EINVAL,
                            "\"contentEncoding\" is not a string");
    metadata = json_object_get(obj, "metadata");
    if (metadata && !json_is_null(metadata) && !json_is_object(metadata))
        return object_error(state, shown, EINVAL,
                            "\"metadata\" is not an object");
    exact = json_object_get(obj, "metadataBase64");
    if (exact && json_is_null(exact))
        exact = NULL;

    meta = s3m_meta_with_type(NULL, type ? json_string_value(type) : NULL,
                              encoding ? json_string_value(encoding) : NULL);
    if (!meta)
        return object_error(state, shown, ENOMEM, "out of memory");
    if (exact) {
        rc = exact_metadata(state, shown, exact, &meta);
    } else if (json_is_object(metadata)) {
        json_object_keylen_foreach((json_t *)metadata, name, name_len, value) {
            char name_shown[128];
            if (!json_is_string(value)) {
                rc = object_error(state, shown, EINVAL,
                                  "metadata '%s' is not a string",
                                  fmt_key_for_message(name, name_len,
                                                      name_shown));
                break;
            }
            if (name_len == 0 || strlen(name) != name_len) {
                rc = object_error(state, shown, EINVAL,
                                  "a metadata name is empty or holds NUL");
                break;
            }
            if (s3m_meta_set(meta, name, json_string_value(value),
                             json_string_length(value))) {
                rc = object_error(state, shown, ENOMEM, "out of memory");
                break;
            }
        }
    }
    if (rc) {
        s3m_meta_unref(meta);
        return rc;
    }
    *out = meta;
    return 0;
}

/* True when etag (possibly in double quotes) is 32 hex digits; fills md5. */
static bool plain_md5_etag(const json_t *etag, unsigned char md5[16])
{
    const char *text = json_string_value(etag);
    size_t len = json_string_length(etag);
    char hex[33];

    if (len == 34 && text[0] == '"' && text[33] == '"') {
        text++;
        len -= 2;
    }
    if (len != 32)
        return false;
    memcpy(hex, text, 32);
    hex[32] = '\0';
    return s3m_md5_parse_hex(hex, md5);
}

/* Hands the body just stored under key to the verifier, with the claimed
 * MD5. 0, -ENOMEM (reported), or the verifier's mismatch (reported). */
static int defer_check(struct load_state *state, const char *key,
                       const unsigned char claimed[16], const char *shown,
                       const json_t *etag)
{
    int rc = 0;
    /* open, not get: no request counted or logged for the loader's look */
    struct s3m_object *obj = s3m_store_open(state->store, key, &rc);
    struct s3m_body *body = obj ? s3m_object_body(state->store, obj) : NULL;
    s3m_object_unref(obj);
    if (!body)
        return object_error(state, shown, ENOMEM, "out of memory");
    char etag_text[41];
    snprintf(etag_text, sizeof(etag_text), "%s", json_string_value(etag));
    if (fmt_verifier_add(state->verifier, body, claimed, shown, etag_text) != 0)
        return verified_mismatch(state);
    return 0;
}

static int load_object(struct load_state *state, const char *json_key,
                       size_t json_key_len, const json_t *obj)
{
    const json_t *body_text, *etag, *modified, *key64;
    unsigned char *body = NULL, *exact_key = NULL, md5[16], claimed[16];
    const char *key = json_key;
    size_t key_len = json_key_len, body_len = 0;
    struct s3m_meta *meta = NULL;
    struct s3m_put_attrs attrs = {0};
    json_int_t size = 0, length = 0, mode = 0, uid = 0, gid = 0;
    bool has_size, has_length, has_mode, has_uid, has_gid;
    char shown[128], etag_hex[33];
    int rc;

    fmt_key_for_message(json_key, json_key_len, shown);
    if (!json_is_object(obj))
        return object_error(state, shown, EINVAL, "not a JSON object");
    if (optional_string(obj, "keyBase64", &key64))
        return object_error(state, shown, EINVAL,
                            "\"keyBase64\" is not a string");
    if (key64) {
        exact_key = decode_base64(key64, &key_len, &rc);
        if (!exact_key)
            return rc == -ENOMEM
                ? object_error(state, shown, ENOMEM, "out of memory")
                : object_error(state, shown, EINVAL,
                               "\"keyBase64\" is not base64");
        key = (const char *)exact_key;
    }
    if (key_len == 0 || key_len > S3M_KEY_MAX || memchr(key, '\0', key_len)) {
        rc = object_error(state, shown, EINVAL,
                          key_len == 0 ? "the key is empty"
                          : key_len > S3M_KEY_MAX
                              ? "the key is longer than 1024 bytes"
                              : "the key holds a NUL byte");
        goto out;
    }

    body_text = json_object_get(obj, "body");
    if (!body_text || !json_is_string(body_text)) {
        rc = object_error(state, shown, EINVAL,
                          body_text ? "\"body\" is not a string"
                                    : "\"body\" is missing");
        goto out;
    }
    body = decode_base64(body_text, &body_len, &rc);
    if (!body) {
        rc = rc == -ENOMEM
            ? object_error(state, shown, ENOMEM, "out of memory")
            : object_error(state, shown, EINVAL, "\"body\" is not valid base64");
        goto out;
    }
    if (optional_integer(obj, "size", INT64_MAX, &has_size, &size) ||
        optional_integer(obj, "contentLength", INT64_MAX, &has_length,
                         &length)) {
        rc = object_error(state, shown, EINVAL,
                          "\"size\" or \"contentLength\" is not a "
                          "non-negative integer");
        goto out;
    }
    if (has_size && (uint64_t)size != body_len) {
        rc = object_error(state, shown, EINVAL,
                          "the body has %zu bytes but \"size\" says %lld",
                          body_len, (long long)size);
        goto out;
    }
    if (optional_integer(obj, "mode", 07777, &has_mode, &mode) ||
        optional_integer(obj, "uid", UINT32_MAX - 1, &has_uid, &uid) ||
        optional_integer(obj, "gid", UINT32_MAX - 1, &has_gid, &gid)) {
        rc = object_error(state, shown, EINVAL,
                          "\"mode\", \"uid\" or \"gid\" is out of range or "
                          "not an integer");
        goto out;
    }
    if (optional_string(obj, "etag", &etag)) {
        rc = object_error(state, shown, EINVAL, "\"etag\" is not a string");
        goto out;
    }
    bool has_claim = etag && plain_md5_etag(etag, claimed);
    /* with a verifier, the claim is checked on its thread once stored */
    bool deferred = has_claim && state->verifier && body_len > 0;
    if (!deferred) {
        struct s3m_md5 hash;
        s3m_md5_init(&hash);
        s3m_md5_update(&hash, body, body_len);
        s3m_md5_final(&hash, md5);
    }
    if (has_claim && !deferred && memcmp(claimed, md5, 16) != 0) {
        s3m_md5_hex(md5, etag_hex);
        rc = object_error(state, shown, EINVAL, ETAG_MISMATCH,
                          json_string_value(etag), etag_hex);
        goto out;
    }
    if (optional_string(obj, "lastModified", &modified)) {
        rc = object_error(state, shown, EINVAL,
                          "\"lastModified\" is not a string");
        goto out;
    }
    if (modified) {
        if (has_nul(modified) ||
            s3m_time_parse_iso(json_string_value(modified), &attrs.mtime_ns)) {
            rc = object_error(state, shown, EINVAL,
                              "\"lastModified\" is not an ISO 8601 time");
            goto out;
        }
        if (attrs.mtime_ns == 0)
            attrs.mtime_ns = 1;   /* 0 would mean "now" to the store */
    }
    rc = build_metadata(state, shown, obj, &meta);
    if (rc)
        goto out;

    attrs.meta = meta;
    /* with a file-type bit set, the store takes the bits as given, even 0 */
    attrs.mode = has_mode ? (uint32_t)(S_IFREG | mode) : 0;
    attrs.has_owner = has_uid || has_gid;
    attrs.uid = has_uid ? (uint32_t)uid : state->config->default_uid;
    attrs.gid = has_gid ? (uint32_t)gid : state->config->default_gid;
    attrs.md5 = deferred ? NULL : md5; /* deferred: the checker caches it */
    {
        char *key_text = exact_key ? (char *)exact_key : NULL;
        if (!key_text) {
            key_text = s3m_strndup(key, key_len);
            if (!key_text) {
                rc = object_error(state, shown, ENOMEM, "out of memory");
                goto out;
            }
        }
        rc = s3m_store_put(state->store, key_text, body, body_len, &attrs,
                           S3M_PUT_CREATE);
        if (rc == 0) {
            state->objects++;
            state->body_bytes += body_len;
            if (deferred)
                rc = defer_check(state, key_text, claimed, shown, etag);
        } else if (rc == -EEXIST) {
            rc = object_error(state, shown, EINVAL, "the key appears twice");
        } else {
            rc = object_error(state, shown, rc, "cannot store it: %s",
                              s3m_format_errno_text(rc));
        }
        if (key_text != (char *)exact_key)
            free(key_text);
    }
out:
    s3m_meta_unref(meta);
    free(body);
    free(exact_key);
    return rc;
}

static int load_member(void *ctx, const char *key, size_t key_len,
                       json_t *value)
{
    return load_object(ctx, key, key_len, value);
}

/* Checks the top level: an object with "objects" an object, and the other
 * s3db.js fields, when present, of their types. */
static int check_top_level(struct load_state *state, const json_t *root)
{
    const json_t *value;

    if (!json_is_object(root))
        return s3m_error_set(state->err, EINVAL,
                             "cannot load '%s': not a save file: the top "
                             "level is not a JSON object", state->path);
    value = json_object_get(root, "objects");
    if (!value)
        return s3m_error_set(state->err, EINVAL,
                             "cannot load '%s': not a save file: \"objects\" "
                             "is missing", state->path);
    if (!json_is_object(value))
        return s3m_error_set(state->err, EINVAL,
                             "cannot load '%s': \"objects\" is not an object",
                             state->path);
    value = json_object_get(root, "objectCount");
    if (value && !json_is_null(value) && !json_is_integer(value))
        return s3m_error_set(state->err, EINVAL,
                             "cannot load '%s': \"objectCount\" is not an "
                             "integer", state->path);
    static const char *const strings[] = {"timestamp", "bucket"};
    for (size_t i = 0; i < 2; i++) {
        value = json_object_get(root, strings[i]);
        if (value && !json_is_null(value) && !json_is_string(value))
            return s3m_error_set(state->err, EINVAL,
                                 "cannot load '%s': \"%s\" is not a string",
                                 state->path, strings[i]);
    }
    return 0;
}

int s3m_format_load(const char *path, const struct s3m_store_config *config,
                    struct s3m_store **out, struct s3m_load_report *report,
                    struct s3m_error *err)
{
    static const struct s3m_store_config defaults;
    struct load_state state = {.path = path, .err = err,
                               .config = config ? config : &defaults};
    struct fmt_json_error error;
    json_t *root;
    bool read_failed;
    FILE *file;
    int rc;

    file = fopen(path, "rbe");
    if (!file) {
        rc = -errno;
        return s3m_error_set(err, rc, "cannot read '%s': %s", path,
                             s3m_format_errno_text(rc));
    }
    /* read it whole, then parse from memory (json_read.c) */
    size_t text_len = 0;
    char *text = NULL;
    rc = fmt_read_whole(file, &text, &text_len);
    fclose(file);
    read_failed = rc != 0;
    if (read_failed)
        return s3m_error_set(err, rc, "cannot read '%s': %s", path,
                             s3m_format_errno_text(rc));
    state.store = s3m_store_new(state.config);
    if (!state.store) {
        free(text);
        return s3m_error_set(err, ENOMEM, "cannot load '%s': out of memory",
                             path);
    }
    /* objects are stored as they are parsed, one at a time; their bodies are
     * checked against their etags on a second thread meanwhile */
    state.verifier = fmt_verifier_start();
    root = fmt_json_parse_streamed(text, text_len, "objects", load_member,
                                   &state, &error);
    free(text);
    rc = verified_mismatch(&state);
    fmt_verifier_free(state.verifier);
    state.verifier = NULL;
    if (rc) {
        json_decref(root);
        s3m_store_free(state.store);
        return rc;
    }
    if (!root) {
        s3m_store_free(state.store);
        if (error.stopped)
            return error.code;
        if (error.code == -ENOMEM)
            return s3m_error_set(err, ENOMEM, "cannot load '%s': out of memory",
                                 path);
        return s3m_error_set(err, EINVAL,
                             "cannot load '%s': not valid JSON at line %d, "
                             "column %d: %s", path, error.line, error.column,
                             error.text);
    }
    rc = check_top_level(&state, root);
    if (rc) {
        s3m_store_free(state.store);
        goto out;
    }
    *out = state.store;
    if (report) {
        report->objects = state.objects;
        report->body_bytes = state.body_bytes;
    }
out:
    json_decref(root);
    return rc;
}
