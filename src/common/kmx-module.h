/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: private modules for the libraries a rare operation needs
 *
 * libssh, gcr and libsecret (and what they pull in) are loaded only when
 * something needs them, from keymux's own modules in KMX_MODULEDIR.  Each
 * module exports one function, kmx_module_<name>_get(), which returns its
 * table of typed functions when the ABI it was built for is the caller's.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* bumped whenever a table below changes */
#define KMX_MODULE_ABI 1

/**
 * KmxModule:
 * @name: the module's file name without the suffix, "keymux-ssh"
 * @symbol: the function that returns its table, "kmx_module_ssh_get"
 * @needs: what the user is told when it cannot be loaded, naming the
 *   library and its package: "importing … needs libssh (package libssh-4)"
 *
 * One loadable module; a static instance per module, filled in on its
 * first successful load.
 */
typedef struct {
	const char *name;
	const char *symbol;
	const char *needs;
	/*< private >*/
	gconstpointer table;
} KmxModule;

gconstpointer kmx_module_load(KmxModule *module, GError **error);
char *kmx_module_dup_dir(void);

/* ---- keymux-ssh: libssh, for passphrase-protected OpenSSH keys ---- */

typedef enum {
	KMX_MODULE_SSH_OK,
	KMX_MODULE_SSH_BAD_PASSPHRASE,
	KMX_MODULE_SSH_UNSUPPORTED_TYPE,
	KMX_MODULE_SSH_MISMATCH,
	KMX_MODULE_SSH_CANNOT_EXPORT,
} KmxModuleSshStatus;

typedef struct {
	/* @text: the encrypted key (PEM text), @public_b64: the public key blob
	 * in base64, as the file holds it in clear.  On success *@pem is the
	 * key without a passphrase, to be freed with free_pem(); with
	 * UNSUPPORTED_TYPE, *@type_name is libssh's name of the key type */
	KmxModuleSshStatus (*decrypt)(const char *text,
				      const char *passphrase,
				      const char *public_b64,
				      const char **type_name,
				      char **pem);
	/* wipes and frees what decrypt() returned */
	void (*free_pem)(char *pem);
} KmxModuleSsh;

/* ---- keymux-gcr: the desktop's system prompter, through gcr ---- */

typedef struct {
	/* gcr_system_prompt_open_for_prompter_async(); the finish returns the
	 * GcrPrompt */
	void (*open_async)(const char *bus_name,
			   int timeout_seconds,
			   GCancellable *cancellable,
			   GAsyncReadyCallback callback,
			   gpointer user_data);
	GObject *(*open_finish)(GAsyncResult *result, GError **error);
	/* sets the texts of a prompt; @warning and @choice may be %NULL */
	void (*set_texts)(GObject *prompt,
			  const char *title,
			  const char *message,
			  const char *description,
			  const char *warning,
			  const char *continue_label,
			  const char *choice);
	void (*password_async)(GObject *prompt,
			       GCancellable *cancellable,
			       GAsyncReadyCallback callback,
			       gpointer user_data);
	const char *(*password_finish)(GObject *prompt, GAsyncResult *result, GError **error);
	gboolean (*get_choice_chosen)(GObject *prompt);
	/* closes the prompt in the background */
	void (*close)(GObject *prompt);
} KmxModuleGcr;

/* ---- keymux-secret: libsecret, for secrets remembered in the login keyring ---- */

typedef struct {
	void (*lookup_async)(const char *device_id,
			     GCancellable *cancellable,
			     GAsyncReadyCallback callback,
			     gpointer user_data);
	/* the remembered secret handed to @take (which copies it before the
	 * module wipes its own), or nothing when none is remembered */
	gboolean (*lookup_finish)(GAsyncResult *result,
				  void (*take)(const guint8 *data, gsize len, gpointer take_data),
				  gpointer take_data,
				  GError **error);
	void (*store)(const char *device_id,
		      const char *item_label,
		      const guint8 *data,
		      gsize len,
		      GAsyncReadyCallback callback,
		      gpointer user_data);
	gboolean (*store_finish)(GAsyncResult *result, GError **error);
	void (*clear)(const char *device_id, GAsyncReadyCallback callback, gpointer user_data);
	gboolean (*clear_finish)(GAsyncResult *result, GError **error);
	gboolean (*clear_sync)(const char *device_id, GError **error);
} KmxModuleSecret;

typedef gconstpointer (*KmxModuleGetFunc)(guint abi);

/* in a module: its one exported function, returning @table for this ABI */
#define KMX_MODULE_DEFINE_GET(func, table)                                                         \
	G_MODULE_EXPORT gconstpointer func(guint abi);                                             \
	G_MODULE_EXPORT gconstpointer func(guint abi)                                              \
	{                                                                                          \
		return abi == KMX_MODULE_ABI ? &(table) : NULL;                                    \
	}

G_END_DECLS
