/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the ssh-agent's messages, parsed apart from what they do
 *
 * A message's bytes (its type, then its fields; the length prefix already
 * taken off) become a KmxSshAgentMessage here, with every length checked by
 * the wire reader (kmx-ssh.c); what the agent does with it is
 * kmx-ssh-agent.c's.  This is what the fuzz target
 * tests/fuzz/ssh_agent_message_fuzzer.c drives, without a daemon.
 */
#include "config.h"

#include <string.h>

#include "kmx-error.h"
#include "kmx-ssh-agent-message.h"
#include "kmx-ssh.h"

#define SSH_AGENT_CONSTRAIN_LIFETIME  1
#define SSH_AGENT_CONSTRAIN_CONFIRM   2
#define SSH_AGENT_CONSTRAIN_MAXSIGN   3
#define SSH_AGENT_CONSTRAIN_EXTENSION 255

static gboolean
kmx_ssh_agent_malformed(GError **error, const char *what)
{
	g_set_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT, "malformed %s message", what);
	return FALSE;
}

/* at most 64 bytes of a name from a client, printable for the log */
static char *
kmx_ssh_agent_shown_name(const guint8 *s, gsize len)
{
	g_autofree char *name = g_strndup((const char *)s, MIN(len, 64));

	return g_strescape(g_utf8_validate(name, -1, NULL) ? name : "?", NULL);
}

/* the names of the constraints after a key, for the log; FALSE if malformed */
static gboolean
kmx_ssh_agent_read_constraints(KmxSshReader *r, GString *names)
{
	while (r->left > 0) {
		guint8 c = 0;
		guint32 v = 0;
		const guint8 *s = NULL;
		gsize len = 0;

		if (!kmx_ssh_read_byte(r, &c))
			return FALSE;
		if (names->len > 0)
			g_string_append(names, ", ");
		switch (c) {
		case SSH_AGENT_CONSTRAIN_LIFETIME:
			if (!kmx_ssh_read_u32(r, &v))
				return FALSE;
			g_string_append_printf(names, "a lifetime of %u s (-t)", v);
			break;
		case SSH_AGENT_CONSTRAIN_CONFIRM:
			g_string_append(names, "confirmation of each use (-c)");
			break;
		case SSH_AGENT_CONSTRAIN_MAXSIGN:
			if (!kmx_ssh_read_u32(r, &v))
				return FALSE;
			g_string_append_printf(names, "at most %u signatures", v);
			break;
		case SSH_AGENT_CONSTRAIN_EXTENSION: {
			g_autofree char *shown = NULL;

			if (!kmx_ssh_read_string(r, &s, &len))
				return FALSE;
			shown = kmx_ssh_agent_shown_name(s, len);
			/* its contents have no length of their own: the rest */
			g_string_append_printf(names, "the extension %s", shown);
			r->p += r->left;
			r->left = 0;
			break;
		}
		default:
			g_string_append_printf(names, "constraint %u", c);
			r->p += r->left;
			r->left = 0;
			break;
		}
	}
	return TRUE;
}

static gboolean
kmx_ssh_agent_parse_add(KmxSshAgentMessage *msg, KmxSshReader *r, GError **error)
{
	g_autoptr(GError) local = NULL;
	g_autoptr(GString) constraints = g_string_new(NULL);
	gboolean constrained = msg->type == SSH2_AGENTC_ADD_ID_CONSTRAINED;

	msg->pem = kmx_ssh_private_key_to_pem(r, &msg->comment, &local);
	if (msg->pem == NULL) {
		if (g_error_matches(local, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT))
			return kmx_ssh_agent_malformed(error, "ADD_IDENTITY");
		/* a key type keymux has not: its fields cannot be told apart */
		msg->refusal = g_strdup(local->message);
		return TRUE;
	}
	if ((constrained && !kmx_ssh_agent_read_constraints(r, constraints)) ||
	    (!constrained && r->left != 0)) {
		kmx_ssh_agent_message_clear(msg);
		return kmx_ssh_agent_malformed(error, "ADD_IDENTITY");
	}
	if (constraints->len > 0)
		msg->refusal = g_strdup_printf("a key with %s: keymux keeps a key until it is "
					       "deleted and cannot honour that; add it without "
					       "constraints",
					       constraints->str);
	return TRUE;
}

static gboolean
kmx_ssh_agent_parse_extension(KmxSshAgentMessage *msg, KmxSshReader *r, GError **error)
{
	const guint8 *name = NULL;
	gsize name_len = 0;
	guint8 forwarding = 0;

	if (!kmx_ssh_read_string(r, &name, &name_len))
		return kmx_ssh_agent_malformed(error, "EXTENSION");
	msg->extension = kmx_ssh_agent_shown_name(name, name_len);
	if (!kmx_ssh_string_is(name, name_len, "session-bind@openssh.com"))
		return TRUE; /* its contents are its own */
	if (!kmx_ssh_read_string(r, &msg->host_key, &msg->host_key_len) || msg->host_key_len == 0 ||
	    !kmx_ssh_read_string(r, &msg->session_id, &msg->session_id_len) ||
	    !kmx_ssh_read_string(r, &msg->signature, &msg->signature_len) ||
	    !kmx_ssh_read_byte(r, &forwarding) || forwarding > 1 || r->left != 0)
		return kmx_ssh_agent_malformed(error, "session-bind@openssh.com");
	msg->session_bind = TRUE;
	msg->forwarding = forwarding != 0;
	return TRUE;
}

/**
 * kmx_ssh_agent_message_parse:
 * @msg: (out caller-allocates): zeroed; cleared with
 *   kmx_ssh_agent_message_clear()
 * @data: a message: its type byte and its fields
 *
 * A message of a type the agent does not know parses, with its type only.
 *
 * Returns: whether it is well-formed; %KMX_ERROR_INVALID_ARGUMENT if not
 * (the agent closes the connection)
 */
gboolean
kmx_ssh_agent_message_parse(KmxSshAgentMessage *msg, const guint8 *data, gsize len, GError **error)
{
	KmxSshReader r;

	memset(msg, 0, sizeof(*msg));
	kmx_ssh_reader_init(&r, data, len);
	if (!kmx_ssh_read_byte(&r, &msg->type))
		return kmx_ssh_agent_malformed(error, "empty");
	switch (msg->type) {
	case SSH2_AGENTC_REQUEST_IDENTITIES:
		if (r.left != 0)
			return kmx_ssh_agent_malformed(error, "REQUEST_IDENTITIES");
		return TRUE;
	case SSH2_AGENTC_SIGN_REQUEST:
		if (!kmx_ssh_read_string(&r, &msg->key_blob, &msg->key_blob_len) ||
		    !kmx_ssh_read_string(&r, &msg->data, &msg->data_len) ||
		    !kmx_ssh_read_u32(&r, &msg->flags) || r.left != 0)
			return kmx_ssh_agent_malformed(error, "SIGN_REQUEST");
		return TRUE;
	case SSH2_AGENTC_ADD_IDENTITY:
	case SSH2_AGENTC_ADD_ID_CONSTRAINED:
		return kmx_ssh_agent_parse_add(msg, &r, error);
	case SSH_AGENTC_LOCK:
	case SSH_AGENTC_UNLOCK:
		if (!kmx_ssh_read_string(&r, &msg->passphrase, &msg->passphrase_len) || r.left != 0)
			return kmx_ssh_agent_malformed(error,
						       msg->type == SSH_AGENTC_LOCK ? "LOCK"
										    : "UNLOCK");
		return TRUE;
	case SSH_AGENTC_EXTENSION:
		return kmx_ssh_agent_parse_extension(msg, &r, error);
	default:
		/* REMOVE_IDENTITY, REMOVE_ALL: refused whatever they hold; the
		 * rest: unknown */
		return TRUE;
	}
}

/**
 * kmx_ssh_agent_message_clear:
 *
 * Frees what a parsed message owns (the key is wiped) and zeroes it.
 */
void
kmx_ssh_agent_message_clear(KmxSshAgentMessage *msg)
{
	g_clear_pointer(&msg->pem, kmx_secret_unref);
	g_clear_pointer(&msg->comment, g_free);
	g_clear_pointer(&msg->refusal, g_free);
	g_clear_pointer(&msg->extension, g_free);
	memset(msg, 0, sizeof(*msg));
}
