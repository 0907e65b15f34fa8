/*
 * format.h - files on disk, compatible with s3db.js 12.4.0 both ways: the
 * MemoryClient save file (saveToDisk/loadFromDisk) and the backup directory
 * (exportBackup/importBackup). Built on the store API; nothing here knows
 * FUSE. This is what the control plane's save, load, export and import
 * commands call.
 *
 * Errors: every function returns 0 or a negative errno and fills the
 * optional err (first error wins) with a lower-case message that names the
 * file, key or line: "cannot read '/x/s3db.json': no such file or
 * directory". -ENOENT missing file or directory, -EACCES/-EROFS/-ENOSPC/-EIO
 * from the file system, -EINVAL a bad file (not JSON, wrong type, invalid
 * base64, etag mismatch, truncated gzip, ...), -ENOMEM. A failing call
 * changes neither the store nor its other outputs.
 *
 * Threads: any function may run while other threads use the store. Save and
 * export work on a copy-on-write snapshot, so the store is locked only for
 * the time the snapshot takes (per object, not per byte).
 *
 * Bytes that are not UTF-8: JSON strings must be UTF-8. Keys, metadata names
 * and values are normally UTF-8 and are written as JSON escapes them
 * (exactly as JSON.stringify does). In a save file, a key, name or value
 * that is not valid UTF-8 is written with each bad byte shown as the text
 * "\xNN", and the exact bytes are kept in two s3mem fields that load prefers
 * ("keyBase64": base64 of the key; "metadataBase64": [[name, value], ...] in
 * base64): nothing is lost. In a backup, such bytes become U+FFFD, as
 * s3db.js's own Buffer.toString('utf8') does (backups are lossy for binary
 * bodies, in s3db.js too).
 *
 * Ownership words as in store.h: "new" - the caller owns and releases the
 * result; "borrowed" - the caller keeps ownership.
 */
#ifndef S3MEM_FORMAT_H
#define S3MEM_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "s3mem/store.h"
#include "s3mem/util.h"

/* ---- save file (s3db.js MemoryClient snapshot JSON) ---------------------- */

/*
 * The file: {"timestamp", "bucket", "objectCount", "objects": {KEY: {"body":
 * base64, "metadata": {}, "contentType", "etag", "lastModified", "size",
 * "contentEncoding" (only when set), "contentLength", "mode", "uid",
 * "gid"}}}, pretty-printed as JSON.stringify(snapshot, null, 2) does.
 * "mode" is the permission bits (no file-type bits); s3db.js ignores the
 * s3mem fields.
 */

struct s3m_save_report {
    size_t objects;           /* objects written */
    uint64_t body_bytes;      /* sum of their body sizes */
    uint64_t file_bytes;      /* size of the file written */
};

/*
 * Writes the whole store to path (borrowed): takes a snapshot, streams it to
 * a temp file beside path (objects one by one, bodies base64-encoded in
 * pieces), flushes and fsyncs it, renames it over path and fsyncs the
 * directory. On failure the temp file is removed, path is untouched and the
 * message says which step failed (create temp file, write, fsync, rename,
 * fsync directory). A new file gets mode 0644; a replaced one keeps its
 * mode. report may be NULL.
 */
int s3m_format_save(struct s3m_store *store, const char *path,
                    struct s3m_save_report *report, struct s3m_error *err);

struct s3m_load_report {
    size_t objects;           /* objects loaded */
    uint64_t body_bytes;      /* sum of their body sizes */
};

/*
 * Parses the save file at path into a new store made with config (borrowed;
 * NULL means all defaults) and sets *out to it (new: free it, or pass it to
 * s3m_store_swap_in and free it). All or nothing: on any error *out is left
 * unchanged and nothing is created. Refused with -EINVAL, naming the key:
 * not JSON or truncated (with line and column), no "objects" object, a
 * field of the wrong type, a key that is empty, longer than 1024 bytes or
 * holds NUL, invalid base64, a body whose length differs from "size", an
 * etag that is a plain MD5 (32 hex digits, optionally in double quotes) but
 * not the body's MD5. Other etags (multipart "...-N") are accepted and the
 * store's own MD5 etag replaces them.
 *
 * Kept: lastModified (ms) as mtime (absent: now), metadata names exactly as
 * written (two names equal but for case: the later wins, as names are
 * case-insensitive), contentType, contentEncoding, mode/uid/gid when present
 * (else the store's defaults). The file's "bucket" is not used: the store's
 * bucket comes from config. Limits in config (enforce_limits, max_memory)
 * apply to what is loaded. report may be NULL.
 */
int s3m_format_load(const char *path, const struct s3m_store_config *config,
                    struct s3m_store **out, struct s3m_load_report *report,
                    struct s3m_error *err);
/* s3m_format_load for a store that will replace current (borrowed, may be
 * NULL): a body whose bytes equal those of current's object at the same key
 * is shared with it instead of copied (and its cached MD5 spares hashing
 * it). current is only read, under its own lock. */
int s3m_format_load_over(const char *path,
                         const struct s3m_store_config *config,
                         struct s3m_store *current, struct s3m_store **out,
                         struct s3m_load_report *report,
                         struct s3m_error *err);

/* ---- backups (s3db.js exportBackup / importBackup) ----------------------- */

/*
 * A backup is a directory with s3db.json and one <resource>.jsonl (or
 * <resource>.jsonl.gz) per resource: one JSON object per line, lines joined
 * by "\n" (no newline after the last, as s3db.js writes them).
 *
 * Records live at keys "resource=<name>/data/id=<id>" (where s3db.js
 * resources keep them) and "resource=<name>/id=<id>" (where s3db.js 12.4's
 * own importBackup put them); <name> and <id> are non-empty and hold no '/'.
 * Partition references ("resource=<name>/partition=...") and every other key
 * are not records and are skipped.
 *
 * Metadata values: s3db.js's client stores non-ASCII values encoded ("u:" +
 * percent-encoding, "b:" + base64) and decodes them on read. Export decodes
 * them exactly as s3db.js's getObject does (so a record holds "Zoë", not
 * "u:Zo%C3%AB"), and "null" becomes JSON null. Import encodes string values
 * exactly as s3db.js's putObject does, so export then import gives back the
 * same bytes and s3db.js resources read the records. See
 * s3m_format_s3db_value_decode / _encode.
 */

struct s3m_export_options {
    bool compress;            /* true: <name>.jsonl.gz (gzip), false: .jsonl */
    const char *resources;    /* borrowed comma-separated names; NULL or ""
                               * = every resource */
    const char *key_prefix;   /* borrowed; only keys under it, with it
                               * stripped, are considered (the mount's
                               * key_prefix); NULL = "" */
};

/* Sets the defaults: compress true, every resource, no key prefix. */
void s3m_export_options_init(struct s3m_export_options *options);

struct s3m_export_report {
    size_t resources;         /* files written */
    size_t records;           /* lines written */
    size_t skipped;           /* keys under resource=.../ that are not
                               * records (partition references, ...) */
    size_t outside;           /* objects under the key prefix but not under
                               * resource=: a backup cannot hold them */
    uint64_t total_size;      /* sum of the files' sizes, as in s3db.json */
};

/*
 * Writes a backup of store (from a snapshot) to dir (borrowed), creating dir
 * when missing (its parent must exist). Each record is the object's
 * metadata (decoded, see above), plus "id" from the key when the metadata
 * has no (non-empty) id, plus the body's fields when the body is a JSON
 * object (they win over metadata fields of the same name), else "_body"
 * with the body as text; an empty body adds nothing. Keys are ordered as
 * JavaScript orders them (integer-like names first), so the files are the
 * bytes s3db.js writes. s3db.json (version "1.0", timestamp, bucket,
 * keyPrefix, compressed, resources {name: {stats: {recordCount, fileSize}}},
 * totalRecords, totalSize) is written last, through a temp file and rename.
 * A resources filter naming no resource that has records fails with -ENOENT
 * and a message listing those that exist; names in it that match nothing
 * are otherwise ignored. On failure, the files this call created are
 * removed. options NULL means the defaults; report may be NULL.
 */
int s3m_format_export_backup(struct s3m_store *store, const char *dir,
                             const struct s3m_export_options *options,
                             struct s3m_export_report *report,
                             struct s3m_error *err);

struct s3m_import_options {
    bool clear;               /* the store becomes exactly the backup */
    const char *resources;    /* borrowed comma-separated names; NULL or ""
                               * = every resource */
    const char *key_prefix;   /* borrowed; records go under it; NULL = "" */
    /* With clear: hears each key the import changed, from the swap's own
     * pass (s3m_store_swap_in); NULL: no one listens. */
    s3m_store_diff_fn changed;
    void *changed_ctx;
};

/* One bad line (or record that could not be stored). */
struct s3m_import_error {
    char *resource;           /* owned */
    char *file;               /* owned: file name within the backup */
    size_t line;              /* 1-based line number */
    char *message;            /* owned */
};

#define S3M_IMPORT_ERRORS_MAX 100   /* errors kept in a report; all counted */

struct s3m_import_report {
    size_t resources;         /* resource files read */
    size_t lines;             /* non-blank lines read */
    size_t records;           /* objects written */
    size_t merges;            /* lines merged into an earlier line's record */
    size_t error_count;       /* bad lines, all of them */
    size_t errors_kept;       /* entries in errors (<= S3M_IMPORT_ERRORS_MAX) */
    struct s3m_import_error *errors; /* owned, in file and line order */
};

/* Frees what a report holds and zeroes it; NULL is fine. */
void s3m_import_report_release(struct s3m_import_report *report);
/* New compact JSON text of report, for .s3mem/status:
 * {"resources":N,"lines":N,"records":N,"merges":N,"errorCount":N,
 *  "errors":[{"resource":..,"file":..,"line":N,"message":..}]}, or NULL. */
char *s3m_import_report_json(const struct s3m_import_report *report);

/*
 * Imports the backup in dir (borrowed) into store. dir must hold s3db.json,
 * and any JSON object is accepted there (the BackupPlugin writes another
 * shape than MemoryClient). Which files are read: when s3db.json has a
 * non-empty "resources" object, the resources it names, each from
 * <name>.jsonl.gz or <name>.jsonl (the one "compressed" says first; a
 * listed resource with neither file is -ENOENT); otherwise every
 * <name>.jsonl and <name>.jsonl.gz in dir, in name order. The resources
 * filter then applies; one that matches nothing is -ENOENT, listing what the
 * backup holds.
 *
 * Each line is a record, written to key_prefix + "resource=<name>/data/id=<id>"
 * (where s3db.js resources read; s3db.js 12.4 wrote "resource=<name>/id=<id>",
 * which its own resources cannot read) with metadata = the record minus
 * "id", "_id" and "_body" (values encoded as s3db.js does; a value that is
 * not a string is stored as its compact JSON text) and body = "_body" when
 * present (its JSON text when not a string), else empty. id is "id", else
 * "_id" (a string, or an integer as its digits). The same id twice in a
 * resource merges the records field by field, later lines winning (s3db.js
 * 12.4 wrote partition references as extra stub records), counted in
 * report->merges. Blank lines are skipped but counted in line numbers.
 *
 * All records are parsed before any is stored. Without clear, a bad line
 * (not a JSON object, no id) or a record the store refuses (limits, key too
 * long) is reported in report->errors by line number and the rest go on, as
 * s3db.js's importBackup does; rc is 0. With clear it is all or nothing:
 * the records go into a new store that replaces store's contents
 * (s3m_store_swap_in) only when every line was good, else -EINVAL naming the
 * file and line and store is unchanged. A file that cannot be read or a
 * truncated or corrupt .gz fails the whole import (-EINVAL or the errno)
 * before anything is stored, naming the file. -ENOMEM while storing, without
 * clear, puts back what was stored (best effort). options NULL means the
 * defaults (no clear, every resource). report may be NULL; else it is
 * filled on success and on failure (release it in both cases).
 */
int s3m_format_import_backup(struct s3m_store *store, const char *dir,
                             const struct s3m_import_options *options,
                             struct s3m_import_report *report,
                             struct s3m_error *err);

/* ---- s3db.js metadata value encoding (concerns/metadata-encoding.js) ----- */

/*
 * Decodes a stored value as s3db.js's metadataDecode: "u:" + percent-encoded
 * UTF-8 and "b:" + base64 UTF-8 are decoded; a value that fails to decode
 * (or decodes to bytes that are not UTF-8) is kept as it is; other values
 * are kept. Sets *out (new, NUL-ended) and *out_len. Also sets *is_null when
 * value is "null" (s3db.js's encoding of null). Returns 0 or -ENOMEM.
 * s3db.js's guess at unprefixed legacy base64 is not done: it could change
 * values that were never encoded.
 */
int s3m_format_s3db_value_decode(const char *value, size_t len, char **out,
                                 size_t *out_len, bool *is_null);
/*
 * Encodes a UTF-8 value as s3db.js's metadataEncode: printable ASCII as is;
 * otherwise "u:" + encodeURIComponent or "b:" + base64, chosen by the same
 * counts of UTF-16 units. Bytes that are not UTF-8 are encoded as "b:".
 * Sets *out (new, NUL-ended) and *out_len. Returns 0 or -ENOMEM.
 */
int s3m_format_s3db_value_encode(const char *value, size_t len, char **out,
                                 size_t *out_len);

/* ---- errno text -------------------------------------------------------- */

/* Short lower-case text for a positive or negative errno ("no such file or
 * directory"), borrowed and static. */
const char *s3m_format_errno_text(int code);

#endif
