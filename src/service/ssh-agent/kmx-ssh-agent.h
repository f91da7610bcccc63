/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the ssh-agent frontend */
#pragma once

#include <gio/gio.h>

#include "kmx-manager.h"

G_BEGIN_DECLS

#define KMX_TYPE_SSH_AGENT (kmx_ssh_agent_get_type())
G_DECLARE_FINAL_TYPE(KmxSshAgent, kmx_ssh_agent, KMX, SSH_AGENT, GObject)

KmxSshAgent *kmx_ssh_agent_new(KmxManager *manager);
gboolean kmx_ssh_agent_start(KmxSshAgent *self, GError **error);
const char *kmx_ssh_agent_get_path(KmxSshAgent *self);
void kmx_ssh_agent_stop(KmxSshAgent *self);

int kmx_ssh_agent_take_listen_fd(void);

G_END_DECLS
