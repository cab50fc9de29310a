/* http.h - the HTTP front end (libmicrohttpd): routing, bodies, responses.
 *
 * One MHD daemon with an internal thread pool of s->http_threads threads. Each request's
 * state lives in MHD's per-connection pointer (con_cls) and is freed in exactly one place,
 * the request-completed callback, which also logs the request line and counts metrics.
 * Bodies are capped at max_body_bytes: a larger Content-Length is answered 413 before any
 * byte is read; a chunked body that grows past the cap closes the connection.
 *
 * Decoding and preprocessing run on the HTTP thread that received the body; the images
 * then go to the model's batcher and the connection is suspended
 * (MHD_suspend_connection) so the thread serves other connections. The batcher's done
 * callback, on a compute worker, resumes it; the HTTP thread then formats the response.
 * See docs/api.md for the endpoints.
 */
#ifndef XBN_HTTP_H
#define XBN_HTTP_H

#include <stddef.h>

#include "server/server.h"

/* Bind the listening socket (server/listener.h): s->listen_fd and s->port are set, and a
 * taken port fails here, at once, with the holder named. http_stop closes it. */
int http_bind(server *s, char *err, size_t errlen);
/* Listen on the bound socket and start serving: s->mhd is set. */
int http_start(server *s, char *err, size_t errlen);
/* Stop accepting new connections (existing ones are still served). */
void http_quiesce(server *s);
/* Close every connection and stop the threads. Every batcher job must be finished. */
void http_stop(server *s);

#endif
