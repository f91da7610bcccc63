/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl: what the subcommands share */
#pragma once

#include <gio/gio.h>

#include "keymux.h"
#include "kmx-error.h"
#include "kmx-names.h"
#include "kmx-secret.h"

G_BEGIN_DECLS

/**
 * KmxCliExit:
 *
 * The exit status of keymuxctl, documented in docs/keymuxctl.md.
 */
typedef enum {
	KMX_CLI_EXIT_OK = 0,
	KMX_CLI_EXIT_FAILED = 1,
	KMX_CLI_EXIT_USAGE = 2,
	KMX_CLI_EXIT_NOT_FOUND = 3,
	KMX_CLI_EXIT_LOCKED = 4,
	KMX_CLI_EXIT_UNAVAILABLE = 5,
	KMX_CLI_EXIT_DENIED = 6,
	KMX_CLI_EXIT_NOT_SUPPORTED = 7,
	KMX_CLI_EXIT_EXISTS = 8,
	KMX_CLI_EXIT_CANCELLED = 9,
} KmxCliExit;

#define KMX_CLI_DEFAULT_DEVICE "softkey:login"
#define KMX_CLI_MIN_PREFIX     4
/* a private key file: more is not a key */
#define KMX_CLI_SECRET_FILE_MAX (1024 * 1024)

typedef struct {
	char *address;	      /* --address, or NULL for the session bus */
	gboolean json;	      /* --json */
	GDBusConnection *bus; /* set by kmx_cli_connect() */
	KeymuxClient *client; /* keymuxd's devices and keys, through libkeymux */
} KmxCli;

typedef gboolean (*KmxCliCommandFunc)(KmxCli *cli, int argc, char **argv, GError **error);

/* keymuxctl.c: options, connection, lookups */
gboolean kmx_cli_parse_options(KmxCli *cli,
			       const char *command,
			       const char *params,
			       const char *summary,
			       const GOptionEntry *entries,
			       int *argc,
			       char ***argv,
			       GError **error);
gboolean kmx_cli_check_args(const char *command, int argc, int min, int max, GError **error);
gboolean kmx_cli_connect(KmxCli *cli, gboolean need_daemon, GError **error);
GList *kmx_cli_list_devices(KmxCli *cli);
GList *kmx_cli_list_keys(KmxCli *cli);
KeymuxDevice *kmx_cli_find_device(KmxCli *cli, const char *name, GError **error);
KeymuxKey *kmx_cli_find_key(KmxCli *cli, const char *name, KeymuxDevice *on_device, GError **error);
KeymuxKey *kmx_cli_find_one_key(KmxCli *cli,
				const char *name,
				const char *device_name,
				GError **error);
GPtrArray *kmx_cli_find_key_holders(KmxCli *cli, const char *name, GError **error);
KeymuxDevice *kmx_cli_get_device_at(KmxCli *cli, const char *path);
const char *kmx_cli_key_device_id(KmxCli *cli, KeymuxKey *key);
const char *kmx_cli_label(gpointer object);
void kmx_cli_print_new_keys(KmxCli *cli, GList *keys);
void kmx_cli_may_prompt(KmxCli *cli, gpointer object);

/* kmx-cli-util.c: input, secrets, output */
GBytes *kmx_cli_read_file(const char *path, GError **error);
KmxSecret *kmx_cli_read_secret_file(const char *path, GError **error);
gboolean kmx_cli_write_all(int fd, const void *data, gsize len, GError **error);
gboolean kmx_cli_stdin_is_tty(void);
KmxSecret *kmx_cli_read_secret(int fd, const char *prompt, GError **error);
KmxSecret *kmx_cli_read_line(int fd, GError **error);
gboolean kmx_cli_confirm(const char *question);
char *kmx_cli_to_hex(const guint8 *data, gsize len);
char *kmx_cli_pem_encode(const char *label, const guint8 *der, gsize len);
GBytes *kmx_cli_pem_decode(GBytes *input, const char *label, GError **error);
gboolean kmx_cli_check_output_format(const char *command,
				     gboolean base64,
				     gboolean hex,
				     GError **error);
gboolean kmx_cli_write_binary(GBytes *data,
			      gboolean base64,
			      gboolean hex,
			      gboolean wipe,
			      GError **error);
char *kmx_cli_short_id(const char *id);
char *kmx_cli_usage_string(const char *const *usage);
char *kmx_cli_device_state(KeymuxDevice *device);
gboolean kmx_cli_device_is_protected(KeymuxDevice *device);
guint kmx_cli_device_key_count(KeymuxDevice *device);

/* tables for people */
typedef struct _KmxTable KmxTable;
KmxTable *kmx_table_new(guint columns, ...);
void kmx_table_add_row(KmxTable *self, ...);
void kmx_table_print(KmxTable *self);
void kmx_table_free(KmxTable *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmxTable, kmx_table_free)

/* json for scripts, written by hand to avoid a dependency */
typedef struct _KmxJson KmxJson;
KmxJson *kmx_json_new(void);
void kmx_json_free(KmxJson *self);
void kmx_json_begin_object(KmxJson *self);
void kmx_json_end_object(KmxJson *self);
void kmx_json_begin_array(KmxJson *self);
void kmx_json_end_array(KmxJson *self);
void kmx_json_key(KmxJson *self, const char *name);
void kmx_json_string(KmxJson *self, const char *value);
void kmx_json_boolean(KmxJson *self, gboolean value);
void kmx_json_int(KmxJson *self, gint64 value);
void kmx_json_null(KmxJson *self);
void kmx_json_strv(KmxJson *self, const char *const *strv);
void kmx_json_variant(KmxJson *self, GVariant *value);
void kmx_json_print(KmxJson *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmxJson, kmx_json_free)

/* shared renderings of a device and a key */
void kmx_cli_json_device(KmxCli *cli, KmxJson *json, KeymuxDevice *device);
void kmx_cli_json_key(KmxCli *cli, KmxJson *json, KeymuxKey *key);

/* kmx-cli-prompter.c: asks on the terminal while a command waits */
void kmx_cli_prompter_start(KeymuxClient *client, gpointer object);
void kmx_cli_prompter_stop(void);

/* the subcommands, one file each */
gboolean kmx_cmd_devices(KmxCli *cli, int argc, char **argv, GError **error);
gboolean kmx_cmd_keys(KmxCli *cli, int argc, char **argv, GError **error);
gboolean kmx_cmd_info(KmxCli *cli, int argc, char **argv, GError **error);
gboolean kmx_cmd_unlock(KmxCli *cli, int argc, char **argv, GError **error);
gboolean kmx_cmd_lock(KmxCli *cli, int argc, char **argv, GError **error);
gboolean kmx_cmd_lock_all(KmxCli *cli, int argc, char **argv, GError **error);
gboolean kmx_cmd_generate(KmxCli *cli, int argc, char **argv, GError **error);
gboolean kmx_cmd_import(KmxCli *cli, int argc, char **argv, GError **error);
gboolean kmx_cmd_sign(KmxCli *cli, int argc, char **argv, GError **error);
gboolean kmx_cmd_decrypt(KmxCli *cli, int argc, char **argv, GError **error);
gboolean kmx_cmd_derive(KmxCli *cli, int argc, char **argv, GError **error);
gboolean kmx_cmd_export_public(KmxCli *cli, int argc, char **argv, GError **error);
gboolean kmx_cmd_set_label(KmxCli *cli, int argc, char **argv, GError **error);
gboolean kmx_cmd_delete(KmxCli *cli, int argc, char **argv, GError **error);
gboolean kmx_cmd_passwd(KmxCli *cli, int argc, char **argv, GError **error);
gboolean kmx_cmd_monitor(KmxCli *cli, int argc, char **argv, GError **error);
gboolean kmx_cmd_version(KmxCli *cli, int argc, char **argv, GError **error);
gboolean kmx_cmd_forget(KmxCli *cli, int argc, char **argv, GError **error);

G_END_DECLS
