/* tls.h - optional HTTPS: the certificate and key, read once at start.
 *
 * tls_cert_file and tls_key_file (both or neither, config.c) name PEM files: the server's
 * certificate, optionally followed by its chain, and its private key. tls_load reads both
 * and checks with GnuTLS (the library libmicrohttpd does TLS with) that they parse, that
 * the key belongs to the certificate and that TLS_PRIORITIES is understood, so a bad pair
 * stops the start with a reason instead of an anonymous "libmicrohttpd did not start".
 * http.c hands the PEM text to libmicrohttpd. The key's bytes are never logged: messages
 * name the file only.
 *
 * Ownership: tls_load fills a caller-owned tls_pem; tls_free wipes the key and frees both.
 */
#ifndef XBN_TLS_H
#define XBN_TLS_H

#include <stddef.h>

/* GnuTLS priorities: its defaults, minus every protocol before TLS 1.2. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

#define TLS_PEM_MAX (1u << 20) /* bytes of one PEM file */

typedef struct {
    char *cert; /* NUL-terminated PEM, or NULL: plain HTTP */
    char *key;
} tls_pem;

/* Read and check cert_path and key_path. Both "" : 0, t stays empty (plain HTTP). Else 0
 * with t filled, or -1 with the reason in err (t empty). */
int tls_load(tls_pem *t, const char *cert_path, const char *key_path, char *err, size_t errlen);

/* Wipe the key, free both; t is empty again. */
void tls_free(tls_pem *t);

#endif
