/* limits.h - every limit of the daemon, each named once with why it has its value.
 *
 * Most are settings (config.c: file key, --flag, XBNSERVE_* variable): for each its default
 * and the range a value must lie in, which config.c's table reads; docs/security.md lists
 * them all. The rest are fixed caps on the configuration itself. Request-body parsers keep
 * their format's own bounds beside the format (multipart boundary, JSON nesting, V2 ids).
 */
#ifndef XBN_SERVER_LIMITS_H
#define XBN_SERVER_LIMITS_H

/* ---- fixed caps on the configuration ---- */

/* Models one daemon serves: each has its own workers and arena, so a few fit one machine. */
#define CFG_MAX_MODELS 16
/* Model name with its NUL: a name appears in URLs and metric labels, which stay short. */
#define CFG_NAME_MAX 64
/* Model and labels file paths with their NUL: PATH_MAX is 4096, real paths are short. */
#define CFG_PATH_MAX 1024
/* Config file size: the documented one (config/xbnserve.json) is about 1 KB. */
#define CFG_FILE_MAX (1 << 20)
/* Labels file size: ImageNet's 1000 class names are about 10 KB. */
#define CFG_LABELS_MAX (8u << 20)
/* Any thread count: far above the cores of one machine, and a bound on a typo's cost. */
#define CFG_MAX_THREADS 256
/* max_batch_size's bound: each worker's arena holds the activations of a whole batch, so
 * its memory grows with the batch size. */
#define CFG_MAX_BATCH 256

/* A list setting, its items comma-separated (cors_allow_origins): a few dozen origins. */
#define CFG_LIST_MAX 1024

/* The body of a repository load or unload (server/repository.h): at most a few parameters,
 * so a few KB; what is over it is refused (413) before cJSON parses it. */
#define REPO_BODY_MAX 4096

/* Every error message buffer of the daemon: configuration and start-up messages (a source, a
 * key and a value, or a model's name, path and loader's message) and the one a request's
 * client is sent and its log line shows (each part cut to its %.Ns in the format). */
#define SRV_ERR_MAX 1024

/* ---- server settings: default, min, max ---- */

/* TCP's port range; 0 asks the kernel for a free port (the log names it; tests use it). */
#define CFG_PORT_DEFAULT 8080
#define CFG_PORT_MIN 0
#define CFG_PORT_MAX 65535
#define CFG_METRICS_PORT_OFF (-1) /* metrics_port: /metrics on the main listener */
#define CFG_METRICS_PORT_MIN (-1)
/* HTTP threads read and parse requests; 0 = the CPUs the process may use (cpus.c). */
#define CFG_HTTP_THREADS_DEFAULT 0
#define CFG_HTTP_THREADS_MIN 0
#define CFG_HTTP_THREADS_MAX CFG_MAX_THREADS
/* Decode threads decode and resize the images of inference requests (server/decodepool.h);
 * 0 = the CPUs the process may use: decoding is CPU-bound, more threads only take turns. */
#define CFG_DECODE_THREADS_DEFAULT 0
#define CFG_DECODE_THREADS_MIN 0
#define CFG_DECODE_THREADS_MAX CFG_MAX_THREADS
/* Requests waiting for a decode thread, 503 above: each holds its body, and at a few
 * milliseconds a decode on two threads 256 wait about a second; a burst beyond that is
 * better told to retry than queued past its deadline. */
#define CFG_DECODE_QUEUE_SIZE_DEFAULT 256
#define CFG_DECODE_QUEUE_SIZE_MIN 1
#define CFG_DECODE_QUEUE_SIZE_MAX 1000000
/* Concurrent connections; more are closed at accept. 512 is far above what two cores serve
 * at once; 100000 bounds a typo (the descriptor limit, ulimit -n, must allow as many). */
#define CFG_MAX_CONNECTIONS_DEFAULT 512
#define CFG_MAX_CONNECTIONS_MIN 1
#define CFG_MAX_CONNECTIONS_MAX 100000
/* Idle seconds before a connection is closed: how long a silent client holds a slot. */
#define CFG_CONNECTION_TIMEOUT_S_DEFAULT 30
#define CFG_CONNECTION_TIMEOUT_S_MIN 1
#define CFG_CONNECTION_TIMEOUT_S_MAX 3600
/* Request body, 413 above (before reading, from Content-Length), also the largest encoded
 * image: 32 MiB holds a few phone photos, base64 included. The 1 KiB minimum keeps a typo
 * from refusing every real image; 4 GiB bounds what a body buffer may be asked to hold. */
#define CFG_MAX_BODY_BYTES_DEFAULT (32LL << 20)
#define CFG_MAX_BODY_BYTES_MIN 1024
#define CFG_MAX_BODY_BYTES_MAX (1LL << 32)
/* width * height of one image, from its header before decoding, 413 above. 13 MP takes what
 * phone cameras write by default (12-12.5 MP: 4032x3024, 4000x3000, 4080x3072; 13 MP
 * sensors, 4160x3120), and a model sees 224 x 224 of it anyway. A decode holds up to 3 bytes
 * per pixel (PNG RGB, progressive JPEG 4:2:0) or 4 (PNG with alpha) for the whole image, and
 * a progressive JPEG's coefficients are held to 3 bytes per pixel of this limit
 * (JPEG_COEF_BYTES_PER_PIXEL, image/limits.h; 4:4:4 to half the pixels): at 13 MP +46 and
 * +49 MB measured (docs/security.md), where the 40 MP allowed before cost up to +235 MB. */
#define CFG_MAX_IMAGE_PIXELS_DEFAULT 13000000
#define CFG_MAX_IMAGE_PIXELS_MIN 1
#define CFG_MAX_IMAGE_PIXELS_MAX (1LL << 32)
/* Images in one request (multipart parts, "instances", a V2 batch), 413 above: a request's
 * images are decoded before any is answered, so this bounds one request's memory. */
#define CFG_MAX_IMAGES_PER_REQUEST_DEFAULT 64
#define CFG_MAX_IMAGES_PER_REQUEST_MIN 1
#define CFG_MAX_IMAGES_PER_REQUEST_MAX 4096
/* Request line + headers as read, line ends included, 431 above: real clients send under
 * 8 KiB. libmicrohttpd's per-connection memory is sized from it (17 bytes per byte, for its
 * records of short header lines; server/http.c pool_bytes), so it costs every connection. */
#define CFG_MAX_HEADER_BYTES_DEFAULT 16384
#define CFG_MAX_HEADER_BYTES_MIN 1024
#define CFG_MAX_HEADER_BYTES_MAX (1 << 20)
/* URL with its query string as sent (escapes undecoded), 414 above: our paths and queries
 * are under 100 bytes; 2048 is what browsers and proxies reliably pass. */
#define CFG_MAX_URL_BYTES_DEFAULT 2048
#define CFG_MAX_URL_BYTES_MIN 64
#define CFG_MAX_URL_BYTES_MAX 65536
/* SIGTERM: longest wait for accepted requests; 30 s is Kubernetes' default grace period. */
#define CFG_DRAIN_TIMEOUT_MS_DEFAULT 30000
#define CFG_DRAIN_TIMEOUT_MS_MIN 0
#define CFG_DRAIN_TIMEOUT_MS_MAX 3600000

/* ---- per-model settings: default, min, max ---- */

/* Images per engine call: 8 is the batch the engine's targets are measured at
 * (docs/benchmarks.md). */
#define CFG_MAX_BATCH_SIZE_DEFAULT 8
#define CFG_MAX_BATCH_SIZE_MIN 1
#define CFG_MAX_BATCH_SIZE_MAX CFG_MAX_BATCH
/* Longest wait for a batch to fill, microseconds: 2 ms is small against one image's compute;
 * 10 s bounds a typo. */
#define CFG_MAX_QUEUE_DELAY_US_DEFAULT 2000
#define CFG_MAX_QUEUE_DELAY_US_MIN 0
#define CFG_MAX_QUEUE_DELAY_US_MAX 10000000
/* Images waiting per model, 503 above: every one holds its decoded pixels (3 x S x S bytes),
 * and a deep queue only adds latency; it must hold at least one batch (config_validate). */
#define CFG_MAX_QUEUE_SIZE_DEFAULT 256
#define CFG_MAX_QUEUE_SIZE_MIN 1
#define CFG_MAX_QUEUE_SIZE_MAX 1000000
/* Deadline from arrival, 504 if not computed by then: 30 s, as long as the drain waits. */
#define CFG_REQUEST_TIMEOUT_MS_DEFAULT 30000
#define CFG_REQUEST_TIMEOUT_MS_MIN 1
#define CFG_REQUEST_TIMEOUT_MS_MAX 3600000
/* Compute threads per model, each with its own session and arena. */
#define CFG_WORKERS_DEFAULT 1
#define CFG_WORKERS_MIN 1
#define CFG_WORKERS_MAX CFG_MAX_THREADS
/* Engine threads per worker; 0 = the usable CPUs divided among all workers (serve.c). */
#define CFG_THREADS_PER_WORKER_DEFAULT 0
#define CFG_THREADS_PER_WORKER_MIN 0
#define CFG_THREADS_PER_WORKER_MAX CFG_MAX_THREADS

#endif
