/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the ssh-agent's messages, parsed apart from what they do */
#pragma once

#include <glib.h>

#include "kmx-secret.h"

G_BEGIN_DECLS

/* draft-miller-ssh-agent §5.1 */
#define SSH_AGENT_FAILURE		  5
#define SSH_AGENT_SUCCESS		  6
#define SSH2_AGENTC_REQUEST_IDENTITIES	  11
#define SSH2_AGENT_IDENTITIES_ANSWER	  12
#define SSH2_AGENTC_SIGN_REQUEST	  13
#define SSH2_AGENT_SIGN_RESPONSE	  14
#define SSH2_AGENTC_ADD_IDENTITY	  17
#define SSH2_AGENTC_REMOVE_IDENTITY	  18
#define SSH2_AGENTC_REMOVE_ALL_IDENTITIES 19
#define SSH_AGENTC_LOCK			  22
#define SSH_AGENTC_UNLOCK		  23
#define SSH2_AGENTC_ADD_ID_CONSTRAINED	  25
#define SSH_AGENTC_EXTENSION		  27

#define SSH_AGENT_RSA_SHA2_256 0x02
#define SSH_AGENT_RSA_SHA2_512 0x04

/**
 * KmxSshAgentMessage:
 * @type: the message type (the first byte)
 *
 * One agent message, its fields checked for shape.  Byte fields point into
 * the message it was parsed from and are valid as long as it is.
 */
typedef struct {
	guint8 type;
	/* SIGN_REQUEST, REMOVE_IDENTITY: the key blob */
	const guint8 *key_blob;
	gsize key_blob_len;
	/* SIGN_REQUEST */
	const guint8 *data;
	gsize data_len;
	guint32 flags;
	/* ADD_IDENTITY, ADD_ID_CONSTRAINED: the key as an OpenSSH private key
	 * file, its comment; or why it cannot be taken (@refusal, a key type
	 * keymux has not, or constraints keymux cannot honour) */
	KmxSecret *pem;
	char *comment;
	char *refusal;
	/* LOCK, UNLOCK */
	const guint8 *passphrase;
	gsize passphrase_len;
	/* EXTENSION: its name (escaped, for the log); for session-bind the
	 * host key, session identifier, signature and forwarding flag */
	char *extension;
	gboolean session_bind;
	const guint8 *host_key;
	gsize host_key_len;
	const guint8 *session_id;
	gsize session_id_len;
	const guint8 *signature;
	gsize signature_len;
	gboolean forwarding;
} KmxSshAgentMessage;

gboolean kmx_ssh_agent_message_parse(KmxSshAgentMessage *msg,
				     const guint8 *data,
				     gsize len,
				     GError **error) G_GNUC_WARN_UNUSED_RESULT;
void kmx_ssh_agent_message_clear(KmxSshAgentMessage *msg);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(KmxSshAgentMessage, kmx_ssh_agent_message_clear)

G_END_DECLS
