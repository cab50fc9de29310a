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

#endif
