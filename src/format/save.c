/*
 * save.c - writes the store as an s3db.js MemoryClient save file.
 *
 * Design note: the store is copied (copy-on-write, per object) into a
 * private snapshot, and the snapshot is streamed to the file with
 * s3m_store_foreach: only the snapshot's own lock is held while writing, so
 * the live store is never blocked by the disk. Each body is encoded as
 * base64 straight from its chunks into a 256 KiB stage that is handed to
 * the file when full (a chunk's bytes that do not fill a base64 group are
 * carried into the next); the document is never built in memory. A second
 * thread hashes bodies ahead of the writer (hasher.c), so the writer
 * mostly finds the MD5 cached. The layout is JSON.stringify(snapshot,
 * null, 2)'s.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

#define SAVE_PIECE (3 * 16384)   /* bytes encoded at a time */
#define SAVE_STAGE (256 * 1024)  /* bytes handed to the file at a time */

struct save_state {
    struct fmt_out out;
    struct fmt_hasher *hasher;  /* owned, may be NULL */
    size_t objects;
    uint64_t body_bytes;
    char *stage;              /* SAVE_STAGE bytes: out's stage */
};

/* Writes "metadataBase64": the exact bytes of every entry, for names or
 * values that are not UTF-8. */
static void write_exact_metadata(struct save_state *state,
                                 const struct s3m_meta *meta)
{
    struct fmt_out *out = &state->out;

    fmt_out_text(out, ",\n      \"metadataBase64\": [");
    for (size_t i = 0; i < meta->count; i++) {
        const struct s3m_meta_entry *entry = &meta->entries[i];
        size_t name_len = strlen(entry->name);
        char *name64 = s3m_malloc(s3m_base64_encoded_length(name_len) + 1);
        char *value64 =
            s3m_malloc(s3m_base64_encoded_length(entry->value_len) + 1);
        if (!name64 || !value64) {
            free(name64);
            free(value64);
            if (!out->error)
                out->error = ENOMEM;
            return;
        }
        s3m_base64_encode(entry->name, name_len, name64);
        s3m_base64_encode(entry->value, entry->value_len, value64);
        fmt_out_printf(out, "%s\n        [\"", i ? "," : "");
        fmt_out_text(out, name64);
        fmt_out_text(out, "\", \"");
        fmt_out_text(out, value64);
        fmt_out_text(out, "\"]");
        free(name64);
        free(value64);
    }
    fmt_out_text(out, "\n      ]");
}

/* Encodes len bytes (a multiple of 3 unless they are the body's last)
 * straight into the stage, in pieces that fit it. */
static void encode_into(struct fmt_out *out, const unsigned char *data,
                        size_t len)
{
    while (len && !out->error) {
        size_t take = len < SAVE_PIECE ? len : SAVE_PIECE;
        size_t encoded = s3m_base64_encoded_length(take);
        /* + 1: the encoder ends its text with a NUL, not committed */
        char *room = fmt_out_reserve(out, encoded + 1);

        if (!room) {
            if (!out->error)
                out->error = EIO;
            return;
        }
        s3m_base64_encode(data, take, room);
        fmt_out_commit(out, encoded);
        data += take;
        len -= take;
    }
}

/* Streams the body as base64 straight from its chunks and returns its MD5
 * in md5. A chunk's last 1 or 2 bytes that do not fill a base64 group are
 * carried into the next chunk's first. */
static void write_body(struct save_state *state, const struct s3m_body *body,
                       uint64_t size, unsigned char md5[16])
{
    struct fmt_out *out = &state->out;
    struct s3m_md5 hash;
    bool cached = s3m_body_cached_md5(body, md5);
    unsigned char carry[3];
    size_t carried = 0;
    struct iovec iov[16];

    s3m_md5_init(&hash);
    fmt_out_write(out, "\"", 1);
    for (uint64_t offset = 0; offset < size && !out->error;) {
        size_t total = 0;
        int count = s3m_body_iov(body, offset, (size_t)(size - offset), iov,
                                 16, &total);
        if (count <= 0 || total == 0) {
            out->error = EIO;
            break;
        }
        for (int i = 0; i < count; i++) {
            const unsigned char *data = iov[i].iov_base;
            size_t len = iov[i].iov_len;
            if (!cached)
                s3m_md5_update(&hash, data, len);
            while (carried && carried < 3 && len) {
                carry[carried++] = *data++;
                len--;
            }
            if (carried == 3) {
                encode_into(out, carry, 3);
                carried = 0;
            }
            size_t whole = len - len % 3;
            encode_into(out, data, whole);
            for (size_t j = whole; j < len; j++)
                carry[carried++] = data[j];
        }
        offset += total;
    }
    encode_into(out, carry, carried);
    fmt_out_write(out, "\"", 1);
    if (!cached) {
        s3m_md5_final(&hash, md5);
        if (!out->error)
            s3m_body_remember_md5((struct s3m_body *)body, md5);
    }
}

static int save_object(void *arg, const char *key,
                       const struct s3m_object_info *info,
                       struct s3m_body *body)
{
    struct save_state *state = arg;
    struct fmt_out *out = &state->out;
    const struct s3m_meta *meta = info->meta;
    size_t key_len = strlen(key);
    bool key_exact, meta_exact = true;
    unsigned char md5[16];
    char etag[33], when[32];

    fmt_out_text(out, state->objects ? ",\n    " : "\n    ");
    key_exact = fmt_out_json_string(out, key, key_len, FMT_BAD_UTF8_HEX);
    fmt_out_text(out, ": {\n      \"body\": ");
    fmt_hasher_at(state->hasher, state->objects);
    write_body(state, body, info->size, md5);
    fmt_out_text(out, ",\n      \"metadata\": {");
    for (size_t i = 0; meta && i < meta->count; i++) {
        const struct s3m_meta_entry *entry = &meta->entries[i];
        fmt_out_text(out, i ? ",\n        " : "\n        ");
        meta_exact &= fmt_out_json_string(out, entry->name,
                                          strlen(entry->name),
                                          FMT_BAD_UTF8_HEX);
        fmt_out_text(out, ": ");
        meta_exact &= fmt_out_json_string(out, entry->value,
                                          entry->value_len, FMT_BAD_UTF8_HEX);
    }
    fmt_out_text(out, meta && meta->count ? "\n      },\n" : "},\n");
    fmt_out_text(out, "      \"contentType\": ");
    const char *type = s3m_meta_content_type(meta);
    fmt_out_json_string(out, type, strlen(type), FMT_BAD_UTF8_HEX);
    s3m_md5_hex(md5, etag);
    s3m_time_format_iso(info->mtime_ns, when);
    fmt_out_text(out, ",\n      \"etag\": \"");
    fmt_out_write(out, etag, 32);
    fmt_out_text(out, "\",\n      \"lastModified\": \"");
    fmt_out_text(out, when);
    fmt_out_text(out, "\",\n      \"size\": ");
    fmt_out_u64(out, info->size);
    fmt_out_text(out, ",\n");
    if (meta && meta->content_encoding) {
        fmt_out_text(out, "      \"contentEncoding\": ");
        fmt_out_json_string(out, meta->content_encoding,
                            strlen(meta->content_encoding), FMT_BAD_UTF8_HEX);
        fmt_out_text(out, ",\n");
    }
    fmt_out_text(out, "      \"contentLength\": ");
    fmt_out_u64(out, info->size);
    fmt_out_text(out, ",\n      \"mode\": ");
    fmt_out_u64(out, info->mode & 07777u);
    fmt_out_text(out, ",\n      \"uid\": ");
    fmt_out_u64(out, info->uid);
    fmt_out_text(out, ",\n      \"gid\": ");
    fmt_out_u64(out, info->gid);
    if (!key_exact) {
        char *key64 = s3m_malloc(s3m_base64_encoded_length(key_len) + 1);
        if (!key64) {
            if (!out->error)
                out->error = ENOMEM;
        } else {
            s3m_base64_encode(key, key_len, key64);
            fmt_out_text(out, ",\n      \"keyBase64\": \"");
            fmt_out_text(out, key64);
            fmt_out_text(out, "\"");
            free(key64);
        }
    }
    if (!meta_exact)
        write_exact_metadata(state, meta);
    fmt_out_text(out, "\n    }");
    state->objects++;
    state->body_bytes += info->size;
    return out->error ? 1 : 0;
}

/* The directory part of path, new ("." when none), or NULL. */
static char *directory_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        return s3m_strdup(".");
    if (slash == path)
        return s3m_strdup("/");
    return s3m_strndup(path, (size_t)(slash - path));
}

/* fsync of a directory; file systems that cannot sync one are fine. */
static int sync_directory(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP)
        rc = -errno;
    close(fd);
    return rc;
}

/* Streams snapshot into file; returns 0 or the first positive errno. */
static int stream_snapshot(struct s3m_store *snapshot, FILE *file,
                           struct save_state *state)
{
    char when[32];

    state->out.file = file;
    fmt_out_stage(&state->out, state->stage, SAVE_STAGE);
    s3m_time_format_iso(s3m_time_now_ns(), when);
    fmt_out_printf(&state->out, "{\n  \"timestamp\": \"%s\",\n  \"bucket\": ",
                   when);
    const char *bucket = s3m_store_bucket(snapshot);
    fmt_out_json_string(&state->out, bucket, strlen(bucket), FMT_BAD_UTF8_HEX);
    fmt_out_printf(&state->out, ",\n  \"objectCount\": %zu,\n  \"objects\": {",
                   s3m_store_count(snapshot, NULL));
    state->hasher = fmt_hasher_start(snapshot);
    s3m_store_foreach(snapshot, NULL, save_object, state);
    fmt_hasher_stop(state->hasher);
    state->hasher = NULL;
    fmt_out_text(&state->out, state->objects ? "\n  }\n}" : "}\n}");
    return fmt_out_flush(&state->out);
}

int s3m_format_save(struct s3m_store *store, const char *path,
                    struct s3m_save_report *report, struct s3m_error *err)
{
    struct save_state state = {0};
    struct s3m_store *snapshot = NULL;
    char *temp = NULL, *dir = NULL;
    const char *step = NULL;
    FILE *file = NULL;
    struct stat old;
    int fd = -1, rc = 0;
    size_t path_len = strlen(path);

    if (path_len == 0)
        return s3m_error_set(err, EINVAL, "cannot save: empty path");
    state.stage = s3m_malloc(SAVE_STAGE);
    temp = s3m_malloc(path_len + sizeof(".tmp-XXXXXX"));
    dir = directory_of(path);
    if (!state.stage || !temp || !dir) {
        rc = s3m_error_set(err, ENOMEM, "cannot save '%s': out of memory",
                           path);
        goto out;
    }
    memcpy(temp, path, path_len);
    memcpy(temp + path_len, ".tmp-XXXXXX", sizeof(".tmp-XXXXXX"));

    snapshot = s3m_store_snapshot(store);
    if (!snapshot) {
        rc = s3m_error_set(err, ENOMEM,
                           "cannot save '%s': out of memory taking a snapshot",
                           path);
        goto out;
    }
    fd = mkostemp(temp, O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        s3m_error_set(err, rc, "cannot save '%s': create temp file: %s", path,
                      s3m_format_errno_text(rc));
        goto out;
    }
    if (stat(path, &old) == 0 && S_ISREG(old.st_mode))
        fchmod(fd, old.st_mode & 07777);
    else
        fchmod(fd, 0644);
    file = fdopen(fd, "w");
    if (!file) {
        rc = -errno;
        step = "write";
        goto fail;
    }
    fd = -1;
    rc = -stream_snapshot(snapshot, file, &state);
    s3m_store_free(snapshot);
    snapshot = NULL;
    if (rc) {
        step = "write";
        goto fail;
    }
    if (fflush(file) != 0) {
        rc = -errno;
        step = "write";
        goto fail;
    }
    if (fsync(fileno(file)) != 0) {
        rc = -errno;
        step = "fsync";
        goto fail;
    }
    if (fclose(file) != 0) {
        file = NULL;
        rc = -errno;
        step = "close";
        goto fail;
    }
    file = NULL;
    if (rename(temp, path) != 0) {
        rc = -errno;
        step = "rename";
        goto fail;
    }
    rc = sync_directory(dir);
    if (rc) {
        s3m_error_set(err, rc, "cannot save '%s': fsync directory '%s': %s",
                      path, dir, s3m_format_errno_text(rc));
        goto out;
    }
    if (report) {
        report->objects = state.objects;
        report->body_bytes = state.body_bytes;
        report->file_bytes = state.out.bytes;
    }
    goto out;

fail:
    if (rc == 0)
        rc = -EIO;
    s3m_error_set(err, rc, "cannot save '%s': %s '%s': %s", path, step, temp,
                  s3m_format_errno_text(rc));
    if (file)
        fclose(file);
    file = NULL;
    if (fd >= 0)
        close(fd);
    fd = -1;
    unlink(temp);
out:
    if (snapshot)
        s3m_store_free(snapshot);
    free(state.stage);
    free(temp);
    free(dir);
    return rc;
}
