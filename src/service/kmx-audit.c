/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the audit record of every private-key operation
 *
 * Who (pid, executable, connection), which key or device, what, and how it
 * ended; never an argument.  To the journal as structured fields when
 * stderr is the journal (a systemd service), else one line on stderr.
 * Caller-controlled text (an error message may quote an algorithm name) is
 * escaped, so that no caller can write a record of its own.
 */
#include "config.h"

#include <stdio.h>
#include <unistd.h>

#include "kmx-error.h"
#include "kmx-manager-private.h"

static void
kmx_audit_write(const GLogField *fields, gsize n_fields, const char *message)
{
	static gsize to_journal = 0; /* 1: no, 2: yes */
	char line[1200];
	int len;

	if (g_once_init_enter(&to_journal))
		g_once_init_leave(&to_journal, g_log_writer_is_journald(fileno(stderr)) ? 2 : 1);
	if (to_journal == 2) {
		g_log_writer_journald(G_LOG_LEVEL_MESSAGE, fields, n_fields, NULL);
		return;
	}
	len = g_snprintf(line, sizeof(line), "keymux-audit: %s\n", message);
	if (len >= (int)sizeof(line)) {
		len = sizeof(line) - 1;
		line[len - 1] = '\n';
	}
	/* one write: lines of concurrent workers do not mix */
	if (write(STDERR_FILENO, line, (size_t)len) < 0)
		return;
}

/* one record: who (from @caller), what, on what, and how it ended */
static void
kmx_audit_write_record(KmxCaller *caller,
		       const char *operation,
		       const char *key_id,
		       const char *device_id,
		       const char *algorithm,
		       const char *result,
		       const char *subject,
		       const char *why)
{
	const char *exe = kmx_caller_get_exe(caller); /* escaped already */
	char pid[16];
	char message[1024];
	GLogField fields[] = {
	    {"MESSAGE_ID", "5d0f3c0e1b7a4e0c9f2a6b8d4c3e2a10", -1},
	    {"PRIORITY", "5", -1},
	    {"GLIB_DOMAIN", "keymux-audit", -1},
	    {"KEYMUX_OPERATION", operation, -1},
	    {"KEYMUX_KEY_ID", key_id, -1},
	    {"KEYMUX_DEVICE_ID", device_id, -1},
	    {"KEYMUX_ALGORITHM", algorithm, -1},
	    {"KEYMUX_CALLER_PID", pid, -1},
	    {"KEYMUX_CALLER_EXE", exe, -1},
	    {"KEYMUX_CALLER", kmx_caller_get_name(caller), -1},
	    {"KEYMUX_RESULT", result, -1},
	    {"MESSAGE", message, -1},
	};

	g_snprintf(pid, sizeof(pid), "%u", kmx_caller_get_pid(caller));
	g_snprintf(message,
		   sizeof(message),
		   "%s %s by pid %s (%s): %s",
		   operation,
		   subject,
		   pid,
		   exe,
		   why);
	kmx_audit_write(fields, G_N_ELEMENTS(fields), message);
}

/**
 * kmx_audit_record:
 * @error: (nullable): how the request ended
 *
 * Writes the record of @req; any thread.
 */
void
kmx_audit_record(KmxRequest *req, const GError *error)
{
	KmxKey *key = kmx_request_get_key(req);
	KmxDevice *device = kmx_request_get_device(req);
	KmxRequestKind kind = kmx_request_get_kind(req);
	const char *key_id = key != NULL ? kmx_key_get_id(key) : "";
	const char *device_id = kmx_device_get_id(device);
	const char *algorithm = "";
	const char *result = "ok";
	g_autofree char *why = NULL;
	g_autofree char *subject = NULL;

	if (kind == KMX_REQUEST_SIGN || kind == KMX_REQUEST_DECRYPT || kind == KMX_REQUEST_DERIVE) {
		KmxMechanism mech = kmx_request_get_args(req)->op.mechanism;
		if (mech != KMX_MECHANISM_UNKNOWN)
			algorithm = kmx_mechanism_to_string(mech);
	}
	if (error != NULL) {
		result = error->domain == KMX_ERROR ? kmx_error_to_dbus_name(error->code)
						    : "org.keymux.Keystore1.Error.Failed";
		why = g_strescape(error->message, NULL);
	}
	subject = key_id[0] != '\0' ? g_strconcat("key ", key_id, NULL)
				    : g_strconcat("device ", device_id, NULL);
	kmx_audit_write_record(kmx_request_get_caller(req),
			       kmx_request_kind_to_string(kind),
			       key_id,
			       device_id,
			       algorithm,
			       result,
			       subject,
			       why == NULL ? "ok" : why);
}

/**
 * kmx_audit_record_event:
 * @operation: what the caller did, e.g. "session-bind"
 * @subject: what on, already escaped
 * @detail: (nullable): what else the record says, already escaped
 *
 * Writes the record of something a caller did that is no request, and
 * that was accepted; any thread.
 */
void
kmx_audit_record_event(KmxCaller *caller,
		       const char *operation,
		       const char *subject,
		       const char *detail)
{
	g_autofree char *why = detail != NULL ? g_strconcat("ok, ", detail, NULL) : NULL;

	g_return_if_fail(caller != NULL);
	kmx_audit_write_record(caller, operation, "", "", "", "ok", subject, why ? why : "ok");
}
