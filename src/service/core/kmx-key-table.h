/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a set of keys, found by id */
#pragma once

#include "kmx-key.h"

G_BEGIN_DECLS

/**
 * KmxKeyTable:
 *
 * Keys found by their id: a device's keys, a store's, the D-Bus export's.
 * A #GHashTable from id to key keeps three arrays (keys, values, hashes),
 * 20 bytes a slot; the id is in the key, so this keeps only the key, 8
 * bytes a slot (with 10,000 keys, 128 KiB a table instead of 320).
 *
 * Each key is in at most once, by its id, which never changes.  The table
 * takes a reference on each key it holds when made with @owns_keys.  No
 * lock: whoever owns the table serialises its use.
 */
typedef struct _KmxKeyTable KmxKeyTable;

/**
 * KmxKeyTableIter:
 *
 * Goes over a table's keys in no order.  The table may lose the current key
 * (kmx_key_table_iter_remove()) during the walk, nothing else.
 */
typedef struct {
	/*< private >*/
	KmxKeyTable *table;
	gsize pos;
} KmxKeyTableIter;

KmxKeyTable *kmx_key_table_new(gboolean owns_keys);
void kmx_key_table_free(KmxKeyTable *self);
guint kmx_key_table_size(const KmxKeyTable *self);
KmxKey *kmx_key_table_lookup(const KmxKeyTable *self, const char *id);
gboolean kmx_key_table_contains(const KmxKeyTable *self, const char *id);
void kmx_key_table_insert(KmxKeyTable *self, KmxKey *key);
gboolean kmx_key_table_remove(KmxKeyTable *self, const char *id);
void kmx_key_table_remove_all(KmxKeyTable *self);

void kmx_key_table_iter_init(KmxKeyTableIter *iter, KmxKeyTable *table);
gboolean kmx_key_table_iter_next(KmxKeyTableIter *iter, KmxKey **key);
void kmx_key_table_iter_remove(KmxKeyTableIter *iter);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmxKeyTable, kmx_key_table_free)

G_END_DECLS
