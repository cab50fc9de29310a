/* tls.c - the HTTPS certificate and key (see tls.h). */
#include "server/tls.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The whole of `path` as a NUL-terminated string; NULL with the reason in err. */
static char *tls_read(const char *what, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s %s: cannot open: %s", what, path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(TLS_PEM_MAX + 1);
    if (!buf) {
        snprintf(err, errlen, "%s %s: out of memory", what, path);
        goto fail;
    }
    size_t n = fread(buf, 1, TLS_PEM_MAX + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "%s %s: cannot read", what, path);
        goto fail;
    }
    if (n > TLS_PEM_MAX) {
        snprintf(err, errlen, "%s %s: larger than %u bytes", what, path, TLS_PEM_MAX);
        goto fail;
    }
    if (!n || memchr(buf, 0, n)) {
        snprintf(err, errlen, "%s %s: not a PEM file", what, path);
        goto fail;
    }
    buf[n] = 0;
    fclose(f);
    return buf;
fail:
    if (buf) {
        explicit_bzero(buf, TLS_PEM_MAX + 1); /* it may have held a key */
        free(buf);
    }
    fclose(f);
    return NULL;
}

/* What libmicrohttpd will do with the pair, done once here for the error message. */
static int tls_check(const tls_pem *t, const char *cert_path, const char *key_path, char *err,
                     size_t errlen)
{
    gnutls_certificate_credentials_t cred = NULL;
    gnutls_priority_t prio = NULL;
    int rc = -1;
    if (gnutls_certificate_allocate_credentials(&cred) < 0) {
        snprintf(err, errlen, "TLS: out of memory");
        goto fail;
    }
    gnutls_datum_t c = {(unsigned char *)t->cert, (unsigned)strlen(t->cert)};
    gnutls_datum_t k = {(unsigned char *)t->key, (unsigned)strlen(t->key)};
    /* GnuTLS checks here that the key is the certificate's. */
    int e = gnutls_certificate_set_x509_key_mem(cred, &c, &k, GNUTLS_X509_FMT_PEM);
    if (e < 0) {
        snprintf(err, errlen, "tls_cert_file %s / tls_key_file %s: %s", cert_path, key_path,
                 e == GNUTLS_E_CERTIFICATE_KEY_MISMATCH
                     ? "the key does not belong to the certificate"
                     : gnutls_strerror(e));
        goto fail;
    }
    const char *where = NULL;
    if (gnutls_priority_init(&prio, TLS_PRIORITIES, &where) < 0) {
        snprintf(err, errlen, "TLS: this GnuTLS does not understand the priorities %s",
                 TLS_PRIORITIES);
        goto fail;
    }
    rc = 0;
fail:
    if (prio) gnutls_priority_deinit(prio);
    if (cred) gnutls_certificate_free_credentials(cred);
    return rc;
}

int tls_load(tls_pem *t, const char *cert_path, const char *key_path, char *err, size_t errlen)
{
    *t = (tls_pem){0};
    if (!cert_path[0] && !key_path[0]) return 0;
    if (!cert_path[0] || !key_path[0]) {
        snprintf(err, errlen, "tls_cert_file and tls_key_file: set both for HTTPS, or neither");
        return -1;
    }
    t->cert = tls_read("tls_cert_file", cert_path, err, errlen);
    if (!t->cert) goto fail;
    t->key = tls_read("tls_key_file", key_path, err, errlen);
    if (!t->key) goto fail;
    if (tls_check(t, cert_path, key_path, err, errlen)) goto fail;
    return 0;
fail:
    tls_free(t);
    return -1;
}

void tls_free(tls_pem *t)
{
    if (t->key) explicit_bzero(t->key, strlen(t->key));
    free(t->key);
    free(t->cert);
    *t = (tls_pem){0};
}
