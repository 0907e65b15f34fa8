/*
 * s3db_value.c - s3db.js's encoding of metadata values
 * (concerns/metadata-encoding.js): S3 metadata must be ASCII, so s3db.js's
 * client writes other values as "u:" + encodeURIComponent(value) or "b:" +
 * base64(UTF-8), choosing by counts of UTF-16 code units, and decodes them
 * when it reads. Backups hold decoded values; the store holds encoded ones.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int copy_out(const char *value, size_t len, char **out, size_t *out_len)
{
    char *copy = s3m_malloc(len + 1);

    if (!copy)
        return -ENOMEM;
    memcpy(copy, value, len);
    copy[len] = '\0';
    *out = copy;
    *out_len = len;
    return 0;
}


/* decodeURIComponent: 0 and a new string, 1 when text is malformed (the
 * caller keeps the value), or -ENOMEM. */
static int percent_decode(const char *text, size_t len, char **out,
                          size_t *out_len)
{
    char *decoded = s3m_malloc(len + 1);
    size_t used = 0;

    if (!decoded)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '%') {
            decoded[used++] = text[i];
            continue;
        }
        if (len - i < 3 || s3m_hex_value(text[i + 1]) < 0 ||
            s3m_hex_value(text[i + 2]) < 0) {
            free(decoded);
            return 1;
        }
        decoded[used++] = (char)(s3m_hex_value(text[i + 1]) << 4 |
                                 s3m_hex_value(text[i + 2]));
        i += 2;
    }
    if (!s3m_utf8_valid(decoded, used)) {
        free(decoded);
        return 1;
    }
    decoded[used] = '\0';
    *out = decoded;
    *out_len = used;
    return 0;
}

/* Base64 as s3db.js wrote it: 0 and a new string, 1 when text is not
 * base64 of UTF-8, or -ENOMEM. */
static int base64_decode_utf8(const char *text, size_t len, char **out,
                              size_t *out_len)
{
    unsigned char *decoded = s3m_malloc(len / 4 * 3 + 4);
    size_t used;

    if (!decoded)
        return -ENOMEM;
    if (s3m_base64_decode(text, len, decoded, &used) != 0 ||
        !s3m_utf8_valid((const char *)decoded, used)) {
        free(decoded);
        return 1;
    }
    decoded[used] = '\0';
    *out = (char *)decoded;
    *out_len = used;
    return 0;
}

int s3m_format_s3db_value_decode(const char *value, size_t len, char **out,
                                 size_t *out_len, bool *is_null)
{
    int rc = 1;

    *is_null = len == 4 && memcmp(value, "null", 4) == 0;
    if (len > 2 && value[1] == ':' && value[0] == 'u')
        rc = percent_decode(value + 2, len - 2, out, out_len);
    else if (len > 2 && value[1] == ':' && value[0] == 'b')
        rc = base64_decode_utf8(value + 2, len - 2, out, out_len);
    if (rc <= 0)
        return rc;
    return copy_out(value, len, out, out_len);
}

static bool uri_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || (c && strchr("-_.!~*'()", c) != NULL);
}

bool fmt_s3db_value_plain(const char *value, size_t len)
{
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, value + i, 8);
        if (fmt_word_has_unprintable(w))
            return false;
    }
    for (; i < len; i++)
        if ((unsigned char)value[i] < 0x20 || (unsigned char)value[i] > 0x7e)
            return false;
    return true;
}

int s3m_format_s3db_value_encode(const char *value, size_t len, char **out,
                                 size_t *out_len)
{
    const unsigned char *bytes = (const unsigned char *)value;
    size_t ascii = 0, latin1 = 0, multibyte = 0, units, i = 0;
    bool use_base64;
    char *encoded;

    /* printable ASCII, by far the usual value, is kept as it is */
    if (fmt_s3db_value_plain(value, len))
        return copy_out(value, len, out, out_len);
    if (!s3m_utf8_valid(value, len)) {
        use_base64 = true;
    } else {
        while (i < len) {
            uint32_t cp = 0;
            size_t step = fmt_utf8_next(bytes + i, len - i, &cp);
            if (cp >= 0x20 && cp <= 0x7e)
                ascii++;
            else if (cp < 0x20 || cp == 0x7f)
                multibyte++;
            else if (cp <= 0xff)
                latin1++;
            else
                multibyte += cp >= 0x10000 ? 2 : 1;   /* UTF-16 units */
            i += step ? step : 1;
        }
        if (latin1 == 0 && multibyte == 0)
            return copy_out(value, len, out, out_len);
        units = ascii + latin1 + multibyte;
        /* multibyte / units > 0.3 and latin1 / units > 0.5, in integers */
        use_base64 = multibyte ? multibyte * 10 > units * 3
                               : latin1 * 2 > units;
    }
    if (use_base64) {
        size_t encoded_len = s3m_base64_encoded_length(len);
        encoded = s3m_malloc(encoded_len + 3);
        if (!encoded)
            return -ENOMEM;
        memcpy(encoded, "b:", 2);
        s3m_base64_encode(value, len, encoded + 2);
        *out = encoded;
        *out_len = encoded_len + 2;
        return 0;
    }
    encoded = s3m_malloc(len * 3 + 3);
    if (!encoded)
        return -ENOMEM;
    memcpy(encoded, "u:", 2);
    size_t used = 2;
    for (i = 0; i < len; i++) {
        if (uri_unreserved(bytes[i])) {
            encoded[used++] = (char)bytes[i];
        } else {
            static const char hex[] = "0123456789ABCDEF";
            encoded[used++] = '%';
            encoded[used++] = hex[bytes[i] >> 4];
            encoded[used++] = hex[bytes[i] & 15];
        }
    }
    encoded[used] = '\0';
    *out = encoded;
    *out_len = used;
    return 0;
}
