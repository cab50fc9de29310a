/* reload.h - SIGHUP: the configuration read again and the model set brought in line with it,
 * while requests keep flowing.
 *
 * reload_run runs on the main thread (serve.c), one reload at a time, never on an HTTP
 * thread. It reads the configuration from the same sources as at start (config_load: file,
 * XBNSERVE_* variables, the same flags) and, model by model: keeps an instance whose
 * settings, file path and file (mtime, size) are unchanged (version by version for a version
 * directory: a new version folder is loaded, a removed one retired); loads and warms up a new one
 * for an added or changed model and publishes it (server_publish), retiring the one it replaces;
 * and unlists a model no longer configured (requests for it get 404; those already admitted
 * finish on their instance). A model that fails to load keeps its old instance serving; the
 * error goes to the log and to the slot's last_error (GET /v1/models). A configuration that
 * does not parse changes nothing. Server-level settings (port, threads, limits, logging) need
 * a restart: a change is logged as ignored.
 *
 * A model unloaded over HTTP (repository.h) stays unloaded through a reload as long as its
 * configuration entry (path, version policy, model settings) is the one it was last loaded
 * from; a reload that finds the entry changed loads it again, and one that finds it gone
 * removes it as any other (added back later, it is a new model). Its files on disk do not
 * count: a new version folder does not bring an unloaded model back.
 *
 * Loads and unloads asked over HTTP are done here too, by reload_op, on the main thread
 * between signals: one at a time, never during a reload.
 */
#ifndef XBN_RELOAD_H
#define XBN_RELOAD_H

#include "server/server.h"

/* Load a new instance of cfg for slot: loaded and warmed up, not yet published. 0, or -1
 * with err. serve.c's. */
typedef int (*reload_load_fn)(server *s, int slot, const model_cfg *cfg, int tpw_auto,
                              srv_model **out, char *err, size_t errlen);

/* Resolve every model's automatic threads_per_worker (0) to usable CPUs / total workers, at
 * least 1; autos[i] says whether models[i]'s was automatic. */
void reload_size_models(config *c, int cpus, int *autos);

/* Bring slot's served versions in line with mc (server/versions.h): each version the policy
 * picks is kept when unchanged, else loaded; versions no longer picked are retired. A version
 * that fails to load keeps its old instance, if any. Main thread, at start-up and on reload.
 * *changed counts versions loaded; 0 when every picked version serves, else -1 with err. */
int reload_model(server *s, int slot, const model_cfg *mc, int tpw_auto, reload_load_fn load,
                 int *changed, char *err, size_t errlen);

/* Re-read the configuration from argv (the words after `serve`) and the environment, and
 * apply it. */
void reload_run(server *s, int argc, char **argv, int cpus, reload_load_fn load);

/* Do the oldest load or unload queued by HTTP threads (server_op_submit) and call its
 * done(); 1 when more are queued. One at a time, so that the main loop looks at its signals
 * between two: a SIGTERM does not wait behind a queue of loads. A load reads the
 * configuration as reload_run does and applies the named model's entry alone, keeping what
 * is unchanged (SRV_OP_ENOMODEL when the configuration has no such model; SRV_OP_EFAILED
 * with what served still serving). An unload retires every version the model serves
 * (SRV_OP_ENOMODEL when it is not in the model set; an unloaded one is unloaded again
 * without error). Main thread. */
int reload_op(server *s, int argc, char **argv, int cpus, reload_load_fn load);

/* The drain: refuse the queued ops and every later one (SRV_OP_ESHUTDOWN). Main thread. */
void reload_ops_refuse(server *s);

#endif
