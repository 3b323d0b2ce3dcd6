/* config.h — `fcgikit gateway` configuration: the parsed form of a config file and of the
 * command line, which share one key table and one setter (config.c), so a value is checked
 * the same way wherever it comes from.
 *
 * Pure: nothing here opens a socket, resolves a name or touches the process; only
 * gw_config_load (and gw_config_from_args, through it) reads the named file. So a config can
 * be checked anywhere (`fcgikit gateway --config FILE --test`) and fuzzed.
 *
 * File format (INI, like fcgikit-pm.conf(5); see fcgikit-gateway.conf(5)):
 *
 *   ; comment            # comment too
 *   [gateway]            the one section; every key belongs to it
 *   listen = 127.0.0.1:8080
 *   backend = unix:/run/app.sock weight=3      repeated: one line per backend
 *   backend = 127.0.0.1:9000
 *   balance = hash:uri
 *   max_body = 16M
 *
 * Keys are the long options without the leading dashes, '-' written '_' (max-body is
 * max_body). A value runs to the end of the line, trimmed; double quotes keep spaces and
 * understand \" and \\. Every error reads "FILE:LINE: REASON" and the parse stops there.
 *
 * On the command line a backend is `--backend ADDR[,weight=N]`. Options given with --config
 * override the file's keys; any --backend replaces the file's whole backend list. */
#ifndef FK_GW_CONFIG_H
#define FK_GW_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define GW_MAX_BACKENDS 1024 /* FK_BAL_MAX_BACKENDS */
#define GW_WEIGHT_MAX 1000   /* FK_BAL_WEIGHT_MAX */
#define GW_MAX_WORKERS 64
#define GW_LINE_MAX 4096

/* What `balance` names. The hash policies hash one key of each request onto the ring. */
typedef enum gw_balance {
	GW_BAL_RR = 0,      /* smooth weighted round-robin */
	GW_BAL_LEAST,       /* weighted least outstanding requests */
	GW_BAL_HASH_URI,    /* consistent hash of the request-target (path and query) */
	GW_BAL_HASH_CLIENT, /* of the client address */
	GW_BAL_HASH_HEADER, /* of a header's value (hash_header); absent: round-robin */
} gw_balance;

typedef struct gw_backend_conf {
	char *addr; /* as fcgi_client_new reads it (owned) */
	unsigned weight; /* 1..GW_WEIGHT_MAX, default 1 */
} gw_backend_conf;

typedef struct gw_config {
	/* Strings are owned; NULL means "not set" (the gateway's default applies). */
	char *listen;
	char *root;
	gw_balance balance;
	char *hash_header; /* GW_BAL_HASH_HEADER: the header's name */
	char *index;       /* NULL: "index.php" */
	char *script_ext;  /* NULL: ".php" */
	uint64_t max_body;
	uint64_t max_buffer;
	uint64_t response_buffer; /* kept in memory before pausing the backend or spilling */
	uint64_t max_temp_file;   /* one response's temporary file; 0: no file */
	uint64_t body_buffer; /* request body bytes kept in memory before the temp file */
	char *temp_dir;       /* NULL: $TMPDIR, else /tmp */
	unsigned max_conns;
	unsigned upstream_timeout_ms;
	unsigned connect_timeout_ms;
	char *access_log; /* NULL: stdout */
	char *status_path;
	unsigned probe_interval_ms; /* 0: off */
	char *probe_uri;            /* NULL: probes are GET_VALUES; else a GET of this path */
	char *sendfile_root;
	unsigned backend_conns; /* 0: the client library's default */
	unsigned queue;
	char *authorizer;
	char *auth_prefix; /* NULL: "/" */
	unsigned workers;  /* 0: one per core ("auto") */
	gw_backend_conf *backends;
	size_t nbackends;

	/* Where it came from, for messages about the whole config (missing listen, ...): the
	 * file (owned) and the line of its [gateway] header; NULL for the command line. */
	char *file;
	int line;
} gw_config;

/* Fills *c with the defaults (those of fcgikit-gateway(1)) and no backends. */
void gw_config_init(gw_config *c);
void gw_config_free(gw_config *c);

/* Sets key (file spelling "max_body" or option spelling "max-body") to value, as one file
 * line or one option would; `backend` appends. 0; -1 for an unknown key; -2 for a bad
 * value, with the reason in why (NUL-terminated, need not say which key). */
int gw_config_set(gw_config *c, const char *key, const char *value, char *why, size_t whylen);

/* Parses text[0..len) (need not be NUL-terminated) as the file `name`. 0 on success;
 * otherwise -1, "NAME:LINE: REASON" in err and *c left as after gw_config_init. Does not
 * check for the required keys (the command line may still add them): gw_config_validate. */
int gw_config_parse(gw_config *c, const char *name, const char *text, size_t len, char *err,
                    size_t errlen);
/* gw_config_parse of the file's contents; a read error is "FILE: REASON". */
int gw_config_load(gw_config *c, const char *file, char *err, size_t errlen);
/* listen and at least one backend. 0, or -1 and "FILE:LINE: REASON" (the [gateway] line). */
int gw_config_validate(const gw_config *c, char *err, size_t errlen);

/* What the command line asked for besides the configuration. */
typedef struct gw_cmdline {
	const char *config; /* --config FILE, or NULL (borrowed from argv) */
	int test;           /* --test: check, print, exit */
	int help;           /* -h, --help */
} gw_cmdline;

/* argv as given after the word `gateway` (argv[0] is skipped). Loads --config FILE when
 * given, then applies every other option over it in order, then validates (unless --help).
 * 0, or -1 with err: "usage: REASON" for a bad command line, "FILE:LINE: REASON" for the
 * file. *c is initialised either way; free it with gw_config_free. */
int gw_config_from_args(gw_config *c, int argc, char **argv, gw_cmdline *cl, char *err,
                        size_t errlen);

/* The balance value as written: "rr", "least", "hash:uri", ... (static storage). */
const char *gw_balance_name(gw_balance b);

#endif
