/* page.h - the try-it page: GET / and its script and style, built into the binary.
 *
 * The page's source is web/index.html, web/app.js and web/app.css, kept as ordinary files;
 * the Makefile turns them into C arrays (tools/embed_web.sh -> build/web/assets.c), so the
 * daemon needs no files at run time and the page works offline. The page uses only the
 * public API (GET /v1/models, POST /v1/models/{name}:predict). Script and style are served
 * as their own routes so the Content-Security-Policy can forbid every inline script and
 * style. `ui: false` turns all three into 404s.
 *
 * docs/openapi.yaml is built in the same way and served at /openapi.yaml, whatever `ui` says:
 * the document in the repository is the one the daemon serves, byte for byte.
 */
#ifndef XBN_PAGE_H
#define XBN_PAGE_H

#include "server/http.h"

/* The policy of the page's answers: its own script, style and XHR, images it makes from
 * the file chosen (blob:), nothing else; no framing, no <base>, no form posts. */
#define PAGE_CSP                                                                                   \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "        \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

int page_index(request *r);   /* GET / */
int page_js(request *r);      /* GET /ui/app.js */
int page_css(request *r);     /* GET /ui/app.css */
int page_openapi(request *r); /* GET /openapi.yaml */

#endif
