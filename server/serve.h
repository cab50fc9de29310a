/* serve.h - the daemon's entry point, called by the CLI's `serve` command.
 *
 * serve_main takes the arguments after `serve` (argv[0] is "serve"), runs the daemon until
 * SIGTERM/SIGINT and the drain that follows, and returns the process exit code: 0 after a
 * clean drain, 1 when the configuration or a model fails, 2 for a usage error.
 */
#ifndef XBN_SERVE_H
#define XBN_SERVE_H

int serve_main(int argc, char **argv);

#endif
