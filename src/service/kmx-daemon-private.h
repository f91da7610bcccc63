/* keymux: what the daemon's parts share among themselves */
#pragma once

#include "kmx-daemon.h"
#include "kmx-request.h"

G_BEGIN_DECLS

struct _KmxCaller {
	gatomicrefcount ref;
	char *sender;
	gboolean resolved;
	guint32 uid;
	guint32 pid;
	char *exe;
	GPtrArray *waiting;	 /* KmxRequest waiting for the credentials */
	GMutex mutex;		 /* cancellables: requests end on workers too */
	GPtrArray *cancellables; /* of this caller's requests in flight */
};

KmxCaller *kmx_caller_ref(KmxCaller *caller);
void kmx_caller_unref(KmxCaller *caller);

typedef void (*KmxCallerReady)(KmxRequest *req, GError *error);
KmxCaller *kmx_daemon_get_caller(KmxDaemon *self, const char *sender);
void kmx_daemon_resolve_caller(KmxDaemon *self, KmxRequest *req, KmxCallerReady ready);
gboolean kmx_daemon_caller_is_allowed(KmxDaemon *self, KmxCaller *caller, GError **error);
gboolean kmx_daemon_authorize_sender_sync(KmxDaemon *self, const char *sender, GError **error);

typedef struct {
	char *sender;
	char *path;
} KmxPrompter;

void kmx_prompter_free(KmxPrompter *p);
KmxPrompter *kmx_daemon_get_prompter(KmxDaemon *self);
void kmx_daemon_drop_prompter(KmxDaemon *self, const KmxPrompter *gone);
GHashTable *kmx_daemon_get_prompts(KmxDaemon *self);
GCancellable *kmx_daemon_get_cancellable(KmxDaemon *self);

/* kmx-prompt.c */
typedef void (*KmxPromptDone)(KmxRequest *req, GError *error);
void kmx_daemon_prompt_unlock(KmxDaemon *self, KmxRequest *req, KmxPromptDone done);

GDBusConnection *kmx_daemon_get_connection(KmxDaemon *self);
char *kmx_daemon_device_path(KmxDevice *device);
char *kmx_daemon_key_path(KmxKey *key);

/* kmx-export.c */
typedef struct _KmxExportedDevice KmxExportedDevice;
KmxExportedDevice *kmx_exported_device_new(KmxDaemon *daemon, KmxDevice *device);
gboolean kmx_exported_device_attach(KmxExportedDevice *edev,
				    GDBusConnection *connection,
				    gboolean announce,
				    GError **error);
void kmx_exported_device_detach(KmxExportedDevice *edev);
void kmx_exported_device_free(KmxExportedDevice *edev);
GPtrArray *kmx_exported_device_get_key_paths(KmxExportedDevice *edev);
const char *kmx_exported_device_get_path(KmxExportedDevice *edev);
void kmx_exported_device_add_managed_objects(KmxExportedDevice *edev, GVariantBuilder *builder);

/* kmx-methods.c */
void kmx_methods_call_key(KmxDaemon *daemon,
			  KmxKey *key,
			  const char *method,
			  GVariant *parameters,
			  GDBusMethodInvocation *invocation);
void kmx_methods_call_device(KmxDaemon *daemon,
			     KmxDevice *device,
			     const char *method,
			     GVariant *parameters,
			     GDBusMethodInvocation *invocation);

/* shared by Manager.Sign/Decrypt and Key.Sign/Decrypt/Derive */
void kmx_request_start_key_operation(KmxRequest *req,
				     KmxOperation op,
				     const char *algorithm,
				     GVariant *data,
				     GVariant *options);
gboolean kmx_options_get_boolean(GVariant *options,
				 const char *name,
				 gboolean *value,
				 GError **error);

G_END_DECLS
