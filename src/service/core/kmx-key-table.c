/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a set of keys, found by id
 *
 * Open addressing with linear probing over a power-of-two array of key
 * pointers.  A removed key leaves a tombstone, so a walk may remove the key
 * it stands on; tombstones go when the array is remade, which an insert does
 * when the used and dead slots pass three quarters of it, and a remove when
 * the keys fill less than an eighth.
 */
#include "config.h"

#include <string.h>

#include "kmx-key-table.h"

#define KMX_KEY_TABLE_MIN_SIZE 8

struct _KmxKeyTable {
	KmxKey **slots;
	gsize size; /* a power of two */
	gsize n_keys;
	gsize n_dead;
	gboolean owns_keys;
};

/* a slot whose key was removed: a probe goes on past it */
static char kmx_key_table_tombstone;
#define TOMBSTONE ((KmxKey *)&kmx_key_table_tombstone)

static inline gboolean
slot_has_key(KmxKey *slot)
{
	return slot != NULL && slot != TOMBSTONE;
}

/**
 * kmx_key_table_new:
 * @owns_keys: whether the table holds a reference on each of its keys
 *
 * Returns: (transfer full): an empty table
 */
KmxKeyTable *
kmx_key_table_new(gboolean owns_keys)
{
	KmxKeyTable *self = g_new0(KmxKeyTable, 1);

	self->size = KMX_KEY_TABLE_MIN_SIZE;
	self->slots = g_new0(KmxKey *, self->size);
	self->owns_keys = owns_keys;
	return self;
}

static void
kmx_key_table_release(KmxKeyTable *self, KmxKey *key)
{
	if (self->owns_keys)
		g_object_unref(key);
}

void
kmx_key_table_free(KmxKeyTable *self)
{
	if (self == NULL)
		return;
	for (gsize i = 0; i < self->size; i++) {
		if (slot_has_key(self->slots[i]))
			kmx_key_table_release(self, self->slots[i]);
	}
	g_free(self->slots);
	g_free(self);
}

guint
kmx_key_table_size(const KmxKeyTable *self)
{
	g_return_val_if_fail(self != NULL, 0);
	return (guint)self->n_keys;
}

/* the slot holding @id, or the empty slot that ends its probe (or, with
 * @reuse, the first tombstone on the way, where an insert may go) */
static gsize
kmx_key_table_find(const KmxKeyTable *self, const char *id, gboolean *found, gboolean reuse)
{
	gsize mask = self->size - 1;
	gsize i = kmx_key_id_hash(id) & mask;
	gsize dead = G_MAXSIZE;

	/* never full: an insert remakes the array before it is */
	for (;; i = (i + 1) & mask) {
		KmxKey *slot = self->slots[i];

		if (slot == NULL) {
			*found = FALSE;
			return reuse && dead != G_MAXSIZE ? dead : i;
		}
		if (slot == TOMBSTONE) {
			if (dead == G_MAXSIZE)
				dead = i;
			continue;
		}
		if (strcmp(kmx_key_peek_id(slot), id) == 0) {
			*found = TRUE;
			return i;
		}
	}
}

static void
kmx_key_table_resize(KmxKeyTable *self, gsize n_keys)
{
	KmxKey **old = self->slots;
	gsize old_size = self->size;
	gsize size = KMX_KEY_TABLE_MIN_SIZE;

	/* at most two thirds full after the remake (10,000 keys: 16,384) */
	while (size * 2 < n_keys * 3)
		size *= 2;
	self->slots = g_new0(KmxKey *, size);
	self->size = size;
	self->n_dead = 0;
	for (gsize i = 0; i < old_size; i++) {
		gsize mask = size - 1;
		gsize j;

		if (!slot_has_key(old[i]))
			continue;
		j = kmx_key_id_hash(kmx_key_peek_id(old[i])) & mask;
		while (self->slots[j] != NULL)
			j = (j + 1) & mask;
		self->slots[j] = old[i];
	}
	g_free(old);
}

/**
 * kmx_key_table_lookup:
 *
 * Returns: (transfer none) (nullable): the key with this id
 */
KmxKey *
kmx_key_table_lookup(const KmxKeyTable *self, const char *id)
{
	gboolean found;
	gsize i;

	g_return_val_if_fail(self != NULL, NULL);
	g_return_val_if_fail(id != NULL, NULL);
	i = kmx_key_table_find(self, id, &found, FALSE);
	return found ? self->slots[i] : NULL;
}

gboolean
kmx_key_table_contains(const KmxKeyTable *self, const char *id)
{
	return kmx_key_table_lookup(self, id) != NULL;
}

/**
 * kmx_key_table_insert:
 *
 * Adds @key, in place of the key with the same id if there is one.
 */
void
kmx_key_table_insert(KmxKeyTable *self, KmxKey *key)
{
	const char *id;
	gboolean found;
	gsize i;

	g_return_if_fail(self != NULL);
	g_return_if_fail(KMX_IS_KEY(key));
	id = kmx_key_peek_id(key);
	g_return_if_fail(id != NULL);

	i = kmx_key_table_find(self, id, &found, TRUE);
	if (found) {
		KmxKey *old = self->slots[i];

		if (old == key)
			return;
		self->slots[i] = self->owns_keys ? g_object_ref(key) : key;
		kmx_key_table_release(self, old);
		return;
	}
	if ((self->n_keys + self->n_dead + 1) * 4 > self->size * 3) {
		kmx_key_table_resize(self, self->n_keys + 1);
		i = kmx_key_table_find(self, id, &found, TRUE);
	}
	if (self->slots[i] == TOMBSTONE)
		self->n_dead--;
	self->slots[i] = self->owns_keys ? g_object_ref(key) : key;
	self->n_keys++;
}

static void
kmx_key_table_kill(KmxKeyTable *self, gsize i)
{
	KmxKey *key = self->slots[i];

	self->slots[i] = TOMBSTONE;
	self->n_keys--;
	self->n_dead++;
	kmx_key_table_release(self, key);
}

/**
 * kmx_key_table_remove:
 *
 * Returns: whether a key with this id was there
 */
gboolean
kmx_key_table_remove(KmxKeyTable *self, const char *id)
{
	gboolean found;
	gsize i;

	g_return_val_if_fail(self != NULL, FALSE);
	g_return_val_if_fail(id != NULL, FALSE);
	i = kmx_key_table_find(self, id, &found, FALSE);
	if (!found)
		return FALSE;
	kmx_key_table_kill(self, i);
	if (self->size > KMX_KEY_TABLE_MIN_SIZE && self->n_keys * 8 < self->size)
		kmx_key_table_resize(self, self->n_keys);
	return TRUE;
}

void
kmx_key_table_remove_all(KmxKeyTable *self)
{
	KmxKey **old;
	gsize old_size;

	g_return_if_fail(self != NULL);
	old = self->slots;
	old_size = self->size;
	self->size = KMX_KEY_TABLE_MIN_SIZE;
	self->slots = g_new0(KmxKey *, self->size);
	self->n_keys = 0;
	self->n_dead = 0;
	/* the table is consistent before any key's last reference goes */
	for (gsize i = 0; i < old_size; i++) {
		if (slot_has_key(old[i]))
			kmx_key_table_release(self, old[i]);
	}
	g_free(old);
}

void
kmx_key_table_iter_init(KmxKeyTableIter *iter, KmxKeyTable *table)
{
	g_return_if_fail(iter != NULL);
	g_return_if_fail(table != NULL);
	iter->table = table;
	iter->pos = G_MAXSIZE; /* before the first slot */
}

/**
 * kmx_key_table_iter_next:
 * @key: (out) (transfer none) (optional): the next key
 *
 * Returns: %FALSE at the end
 */
gboolean
kmx_key_table_iter_next(KmxKeyTableIter *iter, KmxKey **key)
{
	KmxKeyTable *table = iter->table;

	for (iter->pos++; iter->pos < table->size; iter->pos++) {
		if (slot_has_key(table->slots[iter->pos])) {
			if (key != NULL)
				*key = table->slots[iter->pos];
			return TRUE;
		}
	}
	return FALSE;
}

/**
 * kmx_key_table_iter_remove:
 *
 * Removes the key kmx_key_table_iter_next() gave last.
 */
void
kmx_key_table_iter_remove(KmxKeyTableIter *iter)
{
	KmxKeyTable *table = iter->table;

	g_return_if_fail(iter->pos < table->size);
	g_return_if_fail(slot_has_key(table->slots[iter->pos]));
	kmx_key_table_kill(table, iter->pos);
}
