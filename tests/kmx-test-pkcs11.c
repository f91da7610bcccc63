/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kmx-test-pkcs11: drives libkeymux-pkcs11.so the way an application does,
 * through dlopen() and C_GetFunctionList only (tests/test-pkcs11.sh)
 *
 *   kmx-test-pkcs11 MODULE rules KEYID OUT   buffer and attribute rules,
 *                                            multi-part signing; writes an
 *                                            Ed25519 signature of "message"
 *   kmx-test-pkcs11 MODULE threads KEYID     16 threads sign at once
 *   kmx-test-pkcs11 MODULE fork KEYID        a fork()ed child re-initialises
 *   kmx-test-pkcs11 MODULE locked KEYID      login on a locked device ($PIN)
 *   kmx-test-pkcs11 MODULE restart KEYID     keymuxd killed and started
 *                                            again (told on stdin)
 *   kmx-test-pkcs11 MODULE generate KEYID    C_GenerateKeyPair: bad
 *                                            templates, then new keys
 *   kmx-test-pkcs11 MODULE nogen DEVICE      a device that makes no keys
 *   kmx-test-pkcs11 MODULE tpmgen DEVICE     what a TPM makes
 *   kmx-test-pkcs11 MODULE decrypt RSAKEYID PKCS1 OAEP PLAIN
 *                                            multi-part decryption
 *   kmx-test-pkcs11 MODULE memscan RSAKEYID ECKEYID CT PLAIN PEER SHARED
 *                                            waits to have its memory
 *                                            searched (test-pkcs11-memscan)
 *   kmx-test-pkcs11 MODULE events            slots and slot events: one
 *                                            command a line on stdin, one
 *                                            answer a line on stdout
 *                                            (tests/test-pkcs11-events.sh)
 *
 * KEYID: the 64 hex digits of an Ed25519 key; "rules" also wants an RSA key
 * as RSAKEYID in the environment.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static CK_FUNCTION_LIST_PTR p11;
static const char *progname = "kmx-test-pkcs11";

#define CHECK(expr, want)                                                                          \
	do {                                                                                       \
		CK_RV rv_ = (expr);                                                                \
		if (rv_ != (CK_RV)(want)) {                                                        \
			fprintf(stderr,                                                            \
				"%s: line %d: %s: 0x%lx, expected 0x%lx\n",                        \
				progname,                                                          \
				__LINE__,                                                          \
				#expr,                                                             \
				(unsigned long)rv_,                                                \
				(unsigned long)(want));                                            \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define ASSERT(cond)                                                                               \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s: line %d: %s\n", progname, __LINE__, #cond);           \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

static unsigned char key_id[32];
static unsigned char rsa_id[32];
static const unsigned char message[] = "message";

static void
parse_id(const char *hex, unsigned char id[32])
{
	ASSERT(hex != NULL && strlen(hex) == 64);
	for (int i = 0; i < 32; i++)
		ASSERT(sscanf(hex + 2 * i, "%2hhx", &id[i]) == 1);
}

static CK_SLOT_ID
first_slot(void)
{
	CK_SLOT_ID slots[8];
	CK_ULONG count = 8;

	CHECK(p11->C_GetSlotList(CK_TRUE, slots, &count), CKR_OK);
	ASSERT(count >= 1);
	return slots[0];
}

static CK_SESSION_HANDLE
open_session(void)
{
	CK_SESSION_HANDLE session;

	CHECK(p11->C_OpenSession(first_slot(), CKF_SERIAL_SESSION, NULL, NULL, &session), CKR_OK);
	return session;
}

static CK_OBJECT_HANDLE
find_key(CK_SESSION_HANDLE session, const unsigned char id[32], CK_OBJECT_CLASS klass)
{
	CK_ATTRIBUTE templ[] = {
	    {CKA_CLASS, &klass, sizeof klass},
	    {CKA_ID, (void *)id, 32},
	};
	CK_OBJECT_HANDLE found[2];
	CK_ULONG count = 0;

	CHECK(p11->C_FindObjectsInit(session, templ, 2), CKR_OK);
	CHECK(p11->C_FindObjects(session, found, 2, &count), CKR_OK);
	CHECK(p11->C_FindObjectsFinal(session), CKR_OK);
	ASSERT(count == 1);
	return found[0];
}

/* an Ed25519 signature of message: deterministic, so every one is equal */
static CK_RV
sign_ed25519(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key, unsigned char sig[64])
{
	CK_MECHANISM mech = {CKM_EDDSA, NULL, 0};
	CK_ULONG len = 64;
	CK_RV rv = p11->C_SignInit(session, &mech, key);

	if (rv != CKR_OK)
		return rv;
	rv = p11->C_Sign(session, (CK_BYTE_PTR)message, sizeof message - 1, sig, &len);
	if (rv == CKR_OK && len != 64)
		return CKR_GENERAL_ERROR;
	return rv;
}

static void
load(const char *path)
{
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	CK_RV (*get_list)(CK_FUNCTION_LIST_PTR_PTR);

	if (dl == NULL) {
		fprintf(stderr, "%s: %s\n", progname, dlerror());
		exit(1);
	}
	get_list = (CK_RV(*)(CK_FUNCTION_LIST_PTR_PTR))dlsym(dl, "C_GetFunctionList");
	ASSERT(get_list != NULL);
	CHECK(get_list(&p11), CKR_OK);
}

static void
init(void)
{
	CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
	CHECK(p11->C_Initialize(&args), CKR_OK);
}

static void
test_rules(const char *out)
{
	CK_SESSION_HANDLE session;
	CK_OBJECT_HANDLE priv, pub, rsa;
	unsigned char sig[64], sig2[512], sig3[512], buf[8];
	CK_ULONG len;
	CK_MECHANISM eddsa = {CKM_EDDSA, NULL, 0};
	CK_MECHANISM sha256_rsa = {CKM_SHA256_RSA_PKCS, NULL, 0};
	CK_BBOOL value;
	CK_KEY_TYPE type;
	unsigned char id[64];
	CK_ATTRIBUTE attrs[5];
	CK_SLOT_ID slot;
	FILE *f;

	CHECK(p11->C_GetSlotList(CK_TRUE, NULL, &len), CKR_CRYPTOKI_NOT_INITIALIZED);
	init();
	CHECK(p11->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
	/* a slot list too short for the slots */
	len = 0;
	CHECK(p11->C_GetSlotList(CK_TRUE, NULL, &len), CKR_OK);
	ASSERT(len >= 1);
	len = 0;
	CHECK(p11->C_GetSlotList(CK_TRUE, &slot, &len), CKR_BUFFER_TOO_SMALL);
	ASSERT(len >= 1);
	session = open_session();
	priv = find_key(session, key_id, CKO_PRIVATE_KEY);
	pub = find_key(session, key_id, CKO_PUBLIC_KEY);
	ASSERT(priv != pub);

	/* attributes: sensitive, unknown, too small, a size query, a value */
	attrs[0] = (CK_ATTRIBUTE){CKA_VALUE, buf, sizeof buf};
	attrs[1] = (CK_ATTRIBUTE){CKA_VENDOR_DEFINED | 0x4b4d58, buf, sizeof buf};
	attrs[2] = (CK_ATTRIBUTE){CKA_ID, buf, sizeof buf};
	attrs[3] = (CK_ATTRIBUTE){CKA_ID, NULL, 0};
	attrs[4] = (CK_ATTRIBUTE){CKA_SENSITIVE, &value, sizeof value};
	len = p11->C_GetAttributeValue(session, priv, attrs, 5);
	ASSERT(len == CKR_ATTRIBUTE_SENSITIVE || len == CKR_ATTRIBUTE_TYPE_INVALID ||
	       len == CKR_BUFFER_TOO_SMALL);
	ASSERT(attrs[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	ASSERT(attrs[1].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	ASSERT(attrs[2].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	ASSERT(attrs[3].ulValueLen == 32);
	ASSERT(attrs[4].ulValueLen == 1 && value == CK_TRUE);
	attrs[0] = (CK_ATTRIBUTE){CKA_VALUE, buf, sizeof buf};
	CHECK(p11->C_GetAttributeValue(session, priv, attrs, 1), CKR_ATTRIBUTE_SENSITIVE);
	attrs[0] = (CK_ATTRIBUTE){CKA_ID, id, sizeof id};
	attrs[1] = (CK_ATTRIBUTE){CKA_KEY_TYPE, &type, sizeof type};
	attrs[2] = (CK_ATTRIBUTE){CKA_EXTRACTABLE, &value, sizeof value};
	CHECK(p11->C_GetAttributeValue(session, priv, attrs, 3), CKR_OK);
	ASSERT(attrs[0].ulValueLen == 32 && memcmp(id, key_id, 32) == 0);
	ASSERT(type == CKK_EC_EDWARDS && value == CK_FALSE);
	CHECK(p11->C_GetAttributeValue(session, 0x7fffffff, attrs, 1), CKR_OBJECT_HANDLE_INVALID);
	/* a public key cannot sign */
	CHECK(p11->C_SignInit(session, &eddsa, pub), CKR_KEY_HANDLE_INVALID);

	/* a size query, a short buffer: the operation stays; then the result */
	CHECK(p11->C_SignInit(session, &eddsa, priv), CKR_OK);
	CHECK(p11->C_SignInit(session, &eddsa, priv), CKR_OPERATION_ACTIVE);
	len = 0;
	CHECK(p11->C_Sign(session, (CK_BYTE_PTR)message, sizeof message - 1, NULL, &len), CKR_OK);
	ASSERT(len == 64);
	len = 10;
	CHECK(p11->C_Sign(session, (CK_BYTE_PTR)message, sizeof message - 1, sig, &len),
	      CKR_BUFFER_TOO_SMALL);
	ASSERT(len == 64);
	CHECK(p11->C_Sign(session, (CK_BYTE_PTR)message, sizeof message - 1, sig, &len), CKR_OK);
	ASSERT(len == 64);
	/* done: the operation is over */
	CHECK(p11->C_Sign(session, (CK_BYTE_PTR)message, sizeof message - 1, sig, &len),
	      CKR_OPERATION_NOT_INITIALIZED);
	f = fopen(out, "wb");
	ASSERT(f != NULL && fwrite(sig, 1, 64, f) == 64 && fclose(f) == 0);

	/* multi-part signing hashes here: the same signature as in one part
	 * (PKCS#1 v1.5 is deterministic) */
	rsa = find_key(session, rsa_id, CKO_PRIVATE_KEY);
	attrs[0] = (CK_ATTRIBUTE){CKA_PRIVATE_EXPONENT, sig3, sizeof sig3};
	CHECK(p11->C_GetAttributeValue(session, rsa, attrs, 1), CKR_ATTRIBUTE_SENSITIVE);
	ASSERT(attrs[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	CHECK(p11->C_SignInit(session, &sha256_rsa, rsa), CKR_OK);
	len = sizeof sig2;
	CHECK(p11->C_Sign(session, (CK_BYTE_PTR)message, sizeof message - 1, sig2, &len), CKR_OK);
	ASSERT(len == 256);
	CHECK(p11->C_SignInit(session, &sha256_rsa, rsa), CKR_OK);
	CHECK(p11->C_SignUpdate(session, (CK_BYTE_PTR)message, 3), CKR_OK);
	CHECK(p11->C_SignUpdate(session, (CK_BYTE_PTR)message + 3, sizeof message - 4), CKR_OK);
	/* single part after multi-part is not allowed */
	len = sizeof sig3;
	CHECK(p11->C_SignFinal(session, NULL, &len), CKR_OK);
	ASSERT(len == 256);
	len = 1;
	CHECK(p11->C_SignFinal(session, sig3, &len), CKR_BUFFER_TOO_SMALL);
	len = sizeof sig3;
	CHECK(p11->C_SignFinal(session, sig3, &len), CKR_OK);
	ASSERT(len == 256 && memcmp(sig2, sig3, 256) == 0);
	CHECK(p11->C_SignInit(session, &sha256_rsa, rsa), CKR_OK);
	CHECK(p11->C_SignUpdate(session, (CK_BYTE_PTR)message, 3), CKR_OK);
	len = sizeof sig3;
	CHECK(p11->C_Sign(session, (CK_BYTE_PTR)message, 3, sig3, &len),
	      CKR_OPERATION_NOT_INITIALIZED);
	/* Ed25519 cannot do RSA */
	CHECK(p11->C_SignInit(session, &sha256_rsa, priv), CKR_KEY_TYPE_INCONSISTENT);

	CHECK(p11->C_CloseSession(session), CKR_OK);
	CHECK(p11->C_CloseSession(session), CKR_SESSION_HANDLE_INVALID);
	CHECK(p11->C_Finalize(NULL), CKR_OK);
	CHECK(p11->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK(p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &session),
	      CKR_CRYPTOKI_NOT_INITIALIZED);
	/* and once more */
	init();
	session = open_session();
	CHECK(sign_ed25519(session, find_key(session, key_id, CKO_PRIVATE_KEY), sig2), CKR_OK);
	ASSERT(memcmp(sig, sig2, 64) == 0);
	CHECK(p11->C_Finalize(NULL), CKR_OK);
}

#define N_THREADS 16
#define N_SIGNS	  25

static unsigned char reference[64];

static void *
thread_main(void *data)
{
	/* one session per thread, as applications do */
	CK_SESSION_HANDLE session = open_session();
	CK_OBJECT_HANDLE key = find_key(session, key_id, CKO_PRIVATE_KEY);

	for (int i = 0; i < N_SIGNS; i++) {
		unsigned char sig[64];
		CHECK(sign_ed25519(session, key, sig), CKR_OK);
		ASSERT(memcmp(sig, reference, 64) == 0);
	}
	CHECK(p11->C_CloseSession(session), CKR_OK);
	return NULL;
}

static void
test_threads(void)
{
	pthread_t threads[N_THREADS];
	CK_SESSION_HANDLE session;

	init();
	session = open_session();
	CHECK(sign_ed25519(session, find_key(session, key_id, CKO_PRIVATE_KEY), reference), CKR_OK);
	for (int i = 0; i < N_THREADS; i++)
		ASSERT(pthread_create(&threads[i], NULL, thread_main, NULL) == 0);
	for (int i = 0; i < N_THREADS; i++)
		ASSERT(pthread_join(threads[i], NULL) == 0);
	CHECK(p11->C_Finalize(NULL), CKR_OK);
	printf("%d threads signed %d times each\n", N_THREADS, N_SIGNS);
}

static void
test_fork(void)
{
	CK_SESSION_HANDLE session;
	CK_OBJECT_HANDLE key;
	unsigned char sig[64];
	CK_ULONG count;
	int status;
	pid_t pid;

	init();
	session = open_session();
	key = find_key(session, key_id, CKO_PRIVATE_KEY);
	CHECK(sign_ed25519(session, key, reference), CKR_OK);
	pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		progname = "kmx-test-pkcs11 (child)";
		/* the parent's module state is not the child's */
		CHECK(p11->C_GetSlotList(CK_TRUE, NULL, &count), CKR_CRYPTOKI_NOT_INITIALIZED);
		CHECK(sign_ed25519(session, key, sig), CKR_CRYPTOKI_NOT_INITIALIZED);
		init();
		session = open_session();
		CHECK(sign_ed25519(session, find_key(session, key_id, CKO_PRIVATE_KEY), sig),
		      CKR_OK);
		ASSERT(memcmp(sig, reference, 64) == 0);
		CHECK(p11->C_Finalize(NULL), CKR_OK);
		_exit(0);
	}
	ASSERT(waitpid(pid, &status, 0) == pid);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* the parent's session is untouched */
	CHECK(sign_ed25519(session, key, sig), CKR_OK);
	ASSERT(memcmp(sig, reference, 64) == 0);
	CHECK(p11->C_Finalize(NULL), CKR_OK);
	printf("fork: the child re-initialised and signed\n");
}

static CK_STATE
session_state(CK_SESSION_HANDLE session)
{
	CK_SESSION_INFO info;

	CHECK(p11->C_GetSessionInfo(session, &info), CKR_OK);
	return info.state;
}

/* a protected device, locked: PIN in $PIN */
static void
test_locked(void)
{
	const char *pin = getenv("PIN");
	CK_SESSION_HANDLE session, rw;
	CK_OBJECT_HANDLE key, pub, priv;
	CK_MECHANISM edwards_gen = {CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0};
	CK_TOKEN_INFO info;
	unsigned char sig[64];

	ASSERT(pin != NULL);
	init();
	CHECK(p11->C_GetTokenInfo(first_slot(), &info), CKR_OK);
	ASSERT(info.flags & CKF_LOGIN_REQUIRED);
	ASSERT(info.flags & CKF_PROTECTED_AUTHENTICATION_PATH);
	session = open_session();
	ASSERT(session_state(session) == CKS_RO_PUBLIC_SESSION);
	/* listing works locked, using a key does not */
	key = find_key(session, key_id, CKO_PRIVATE_KEY);
	CHECK(sign_ed25519(session, key, sig), CKR_USER_NOT_LOGGED_IN);
	/* nor making one */
	CHECK(
	    p11->C_OpenSession(first_slot(), CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &rw),
	    CKR_OK);
	CHECK(p11->C_GenerateKeyPair(rw, &edwards_gen, NULL, 0, NULL, 0, &pub, &priv),
	      CKR_USER_NOT_LOGGED_IN);
	CHECK(p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR) "wrong", 5), CKR_PIN_INCORRECT);
	CHECK(p11->C_Login(session, CKU_SO, (CK_UTF8CHAR_PTR)pin, strlen(pin)),
	      CKR_USER_TYPE_INVALID);
	/* the protected path with nobody to ask */
	CHECK(p11->C_Login(session, CKU_USER, NULL, 0), CKR_FUNCTION_CANCELED);
	CHECK(p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR) "a\0b", 3), CKR_PIN_INVALID);
	ASSERT(session_state(session) == CKS_RO_PUBLIC_SESSION);
	CHECK(p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)), CKR_OK);
	ASSERT(session_state(session) == CKS_RO_USER_FUNCTIONS);
	CHECK(p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)),
	      CKR_USER_ALREADY_LOGGED_IN);
	CHECK(sign_ed25519(session, key, sig), CKR_OK);
	CHECK(p11->C_Logout(session), CKR_OK);
	ASSERT(session_state(session) == CKS_RO_PUBLIC_SESSION);
	CHECK(p11->C_Logout(session), CKR_USER_NOT_LOGGED_IN);
	CHECK(sign_ed25519(session, key, sig), CKR_USER_NOT_LOGGED_IN);
	CHECK(p11->C_Finalize(NULL), CKR_OK);
	printf("locked: login, logout\n");
}

static void
wait_line(const char *say)
{
	char line[64];

	printf("%s\n", say);
	fflush(stdout);
	ASSERT(fgets(line, sizeof line, stdin) != NULL);
}

static void
test_restart(void)
{
	CK_SESSION_HANDLE session;
	CK_OBJECT_HANDLE key;
	unsigned char sig[64];
	CK_ULONG count = 0;
	CK_RV rv;

	init();
	session = open_session();
	key = find_key(session, key_id, CKO_PRIVATE_KEY);
	CHECK(sign_ed25519(session, key, reference), CKR_OK);
	wait_line("killed?");
	/* keymuxd is gone: the device is removed, no token, no hang */
	rv = sign_ed25519(session, key, sig);
	ASSERT(rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT);
	CHECK(p11->C_GetSlotList(CK_TRUE, NULL, &count), CKR_OK);
	ASSERT(count == 0);
	CHECK(p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &session),
	      CKR_TOKEN_NOT_PRESENT);
	wait_line("restarted?");
	/* back: the same slot, the same key */
	CHECK(p11->C_GetSlotList(CK_TRUE, NULL, &count), CKR_OK);
	ASSERT(count == 1);
	CHECK(sign_ed25519(session, key, sig), CKR_OK);
	ASSERT(memcmp(sig, reference, 64) == 0);
	session = open_session();
	CHECK(sign_ed25519(session, find_key(session, key_id, CKO_PRIVATE_KEY), sig), CKR_OK);
	ASSERT(memcmp(sig, reference, 64) == 0);
	CHECK(p11->C_Finalize(NULL), CKR_OK);
	printf("recovered\n");
}

/* ---- C_GenerateKeyPair ---- */

static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
/* DER OIDs of the curves */
static const unsigned char p256_oid[] =
    {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const unsigned char secp256k1_oid[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a};
static const unsigned char ed25519_oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};

static CK_ULONG
count_objects(CK_SESSION_HANDLE session, CK_OBJECT_CLASS klass)
{
	CK_ATTRIBUTE templ = {CKA_CLASS, &klass, sizeof klass};
	CK_OBJECT_HANDLE found[64];
	CK_ULONG count = 0;

	CHECK(p11->C_FindObjectsInit(session, &templ, 1), CKR_OK);
	CHECK(p11->C_FindObjects(session, found, 64, &count), CKR_OK);
	CHECK(p11->C_FindObjectsFinal(session), CKR_OK);
	return count;
}

/* C_GenerateKeyPair with @priv as the private key's template and @pub as
 * the public key's */
static CK_RV
generate(CK_SESSION_HANDLE session,
	 CK_MECHANISM_TYPE type,
	 CK_ATTRIBUTE *pub,
	 CK_ULONG n_pub,
	 CK_ATTRIBUTE *priv,
	 CK_ULONG n_priv,
	 CK_OBJECT_HANDLE *pub_out,
	 CK_OBJECT_HANDLE *priv_out)
{
	CK_MECHANISM mech = {type, NULL, 0};
	return p11->C_GenerateKeyPair(session, &mech, pub, n_pub, priv, n_priv, pub_out, priv_out);
}

static int
has_mechanism(CK_SLOT_ID slot, CK_MECHANISM_TYPE type)
{
	CK_MECHANISM_TYPE list[64];
	CK_ULONG count = 64;

	CHECK(p11->C_GetMechanismList(slot, list, &count), CKR_OK);
	for (CK_ULONG i = 0; i < count; i++)
		if (list[i] == type)
			return 1;
	return 0;
}

/* bad templates: the right error each, and no key made */
static void
test_generate_bad(CK_SESSION_HANDLE session)
{
	CK_ULONG bits = 2048, bits_bad = 1024, bits_other = 3072;
	CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY, pub_class = CKO_PUBLIC_KEY;
	CK_KEY_TYPE rsa_type = CKK_RSA;
	unsigned char e3[] = {0x03}, e65537[] = {0x00, 0x01, 0x00, 0x01}, junk[] = {0x30, 0x03};
	unsigned char bad_utf8[] = {'a', 0xff};
	CK_OBJECT_HANDLE pub, priv;
	CK_MECHANISM with_param = {CKM_EC_KEY_PAIR_GEN, junk, sizeof junk};
	CK_ULONG before = count_objects(session, CKO_PRIVATE_KEY);
	struct {
		CK_MECHANISM_TYPE mech;
		CK_ATTRIBUTE pub[3];
		CK_ATTRIBUTE priv[2];
		CK_RV want;
	} cases[] = {
	    /* no key size, a size keymux does not make, two sizes */
	    {CKM_RSA_PKCS_KEY_PAIR_GEN, {{0}}, {{0}}, CKR_TEMPLATE_INCOMPLETE},
	    {CKM_RSA_PKCS_KEY_PAIR_GEN,
	     {{CKA_MODULUS_BITS, &bits_bad, sizeof bits_bad}},
	     {{0}},
	     CKR_ATTRIBUTE_VALUE_INVALID},
	    {CKM_RSA_PKCS_KEY_PAIR_GEN,
	     {{CKA_MODULUS_BITS, &bits, sizeof bits}},
	     {{CKA_MODULUS_BITS, &bits_other, sizeof bits_other}},
	     CKR_TEMPLATE_INCONSISTENT},
	    {CKM_RSA_PKCS_KEY_PAIR_GEN,
	     {{CKA_MODULUS_BITS, &bits, 4}},
	     {{0}},
	     CKR_ATTRIBUTE_VALUE_INVALID},
	    /* 65537 only */
	    {CKM_RSA_PKCS_KEY_PAIR_GEN,
	     {{CKA_MODULUS_BITS, &bits, sizeof bits}, {CKA_PUBLIC_EXPONENT, e3, sizeof e3}},
	     {{0}},
	     CKR_ATTRIBUTE_VALUE_INVALID},
	    /* keymux keys are token objects, sensitive, never extractable */
	    {CKM_RSA_PKCS_KEY_PAIR_GEN,
	     {{CKA_MODULUS_BITS, &bits, sizeof bits}, {CKA_PUBLIC_EXPONENT, e65537, sizeof e65537}},
	     {{CKA_TOKEN, &no, sizeof no}},
	     CKR_ATTRIBUTE_VALUE_INVALID},
	    {CKM_RSA_PKCS_KEY_PAIR_GEN,
	     {{CKA_MODULUS_BITS, &bits, sizeof bits}, {CKA_TOKEN, &no, sizeof no}},
	     {{0}},
	     CKR_ATTRIBUTE_VALUE_INVALID},
	    {CKM_RSA_PKCS_KEY_PAIR_GEN,
	     {{CKA_MODULUS_BITS, &bits, sizeof bits}},
	     {{CKA_EXTRACTABLE, &yes, sizeof yes}},
	     CKR_ATTRIBUTE_VALUE_INVALID},
	    {CKM_RSA_PKCS_KEY_PAIR_GEN,
	     {{CKA_MODULUS_BITS, &bits, sizeof bits}},
	     {{CKA_SENSITIVE, &no, sizeof no}},
	     CKR_ATTRIBUTE_VALUE_INVALID},
	    {CKM_RSA_PKCS_KEY_PAIR_GEN,
	     {{CKA_MODULUS_BITS, &bits, sizeof bits}},
	     {{CKA_SENSITIVE, &yes, 4}},
	     CKR_ATTRIBUTE_VALUE_INVALID},
	    /* usage: every keymux key signs, an RSA key does not derive */
	    {CKM_RSA_PKCS_KEY_PAIR_GEN,
	     {{CKA_MODULUS_BITS, &bits, sizeof bits}},
	     {{CKA_SIGN, &no, sizeof no}},
	     CKR_TEMPLATE_INCONSISTENT},
	    {CKM_RSA_PKCS_KEY_PAIR_GEN,
	     {{CKA_MODULUS_BITS, &bits, sizeof bits}},
	     {{CKA_DERIVE, &yes, sizeof yes}},
	     CKR_TEMPLATE_INCONSISTENT},
	    {CKM_RSA_PKCS_KEY_PAIR_GEN,
	     {{CKA_MODULUS_BITS, &bits, sizeof bits}, {CKA_VERIFY, &no, sizeof no}},
	     {{CKA_SIGN, &yes, sizeof yes}},
	     CKR_TEMPLATE_INCONSISTENT},
	    /* the wrong class or key type */
	    {CKM_RSA_PKCS_KEY_PAIR_GEN,
	     {{CKA_MODULUS_BITS, &bits, sizeof bits}, {CKA_CLASS, &priv_class, sizeof priv_class}},
	     {{0}},
	     CKR_TEMPLATE_INCONSISTENT},
	    {CKM_EC_KEY_PAIR_GEN,
	     {{CKA_EC_PARAMS, (void *)p256_oid, sizeof p256_oid}},
	     {{CKA_KEY_TYPE, &rsa_type, sizeof rsa_type}},
	     CKR_TEMPLATE_INCONSISTENT},
	    {CKM_EC_KEY_PAIR_GEN,
	     {{CKA_EC_PARAMS, (void *)p256_oid, sizeof p256_oid},
	      {CKA_MODULUS_BITS, &bits, sizeof bits}},
	     {{0}},
	     CKR_TEMPLATE_INCONSISTENT},
	    /* two labels for one key, a label that is not UTF-8 */
	    {CKM_EC_KEY_PAIR_GEN,
	     {{CKA_EC_PARAMS, (void *)p256_oid, sizeof p256_oid}, {CKA_LABEL, "one", 3}},
	     {{CKA_LABEL, "two", 3}},
	     CKR_TEMPLATE_INCONSISTENT},
	    {CKM_EC_KEY_PAIR_GEN,
	     {{CKA_EC_PARAMS, (void *)p256_oid, sizeof p256_oid}},
	     {{CKA_LABEL, bad_utf8, sizeof bad_utf8}},
	     CKR_ATTRIBUTE_VALUE_INVALID},
	    {CKM_EC_KEY_PAIR_GEN,
	     {{CKA_EC_PARAMS, (void *)p256_oid, sizeof p256_oid}},
	     {{CKA_LABEL, "a\0b", 3}},
	     CKR_ATTRIBUTE_VALUE_INVALID},
	    /* curves: none, one keymux does not make, not DER, Ed25519's for EC */
	    {CKM_EC_KEY_PAIR_GEN, {{0}}, {{0}}, CKR_TEMPLATE_INCOMPLETE},
	    {CKM_EC_KEY_PAIR_GEN,
	     {{CKA_EC_PARAMS, (void *)secp256k1_oid, sizeof secp256k1_oid}},
	     {{0}},
	     CKR_ATTRIBUTE_VALUE_INVALID},
	    {CKM_EC_KEY_PAIR_GEN,
	     {{CKA_EC_PARAMS, junk, sizeof junk}},
	     {{0}},
	     CKR_ATTRIBUTE_VALUE_INVALID},
	    {CKM_EC_KEY_PAIR_GEN,
	     {{CKA_EC_PARAMS, (void *)ed25519_oid, sizeof ed25519_oid}},
	     {{0}},
	     CKR_ATTRIBUTE_VALUE_INVALID},
	    {CKM_EC_EDWARDS_KEY_PAIR_GEN,
	     {{CKA_EC_PARAMS, (void *)p256_oid, sizeof p256_oid}},
	     {{0}},
	     CKR_ATTRIBUTE_VALUE_INVALID},
	    /* an EC key does not decrypt, Ed25519 does not derive */
	    {CKM_EC_KEY_PAIR_GEN,
	     {{CKA_EC_PARAMS, (void *)p256_oid, sizeof p256_oid}},
	     {{CKA_DECRYPT, &yes, sizeof yes}},
	     CKR_TEMPLATE_INCONSISTENT},
	    {CKM_EC_EDWARDS_KEY_PAIR_GEN,
	     {{0}},
	     {{CKA_DERIVE, &yes, sizeof yes}},
	     CKR_TEMPLATE_INCONSISTENT},
	    /* attributes keymux has no place for */
	    {CKM_EC_EDWARDS_KEY_PAIR_GEN,
	     {{0}},
	     {{CKA_VALUE, junk, sizeof junk}},
	     CKR_ATTRIBUTE_TYPE_INVALID},
	    {CKM_EC_EDWARDS_KEY_PAIR_GEN,
	     {{CKA_SIGN, &yes, sizeof yes}},
	     {{0}},
	     CKR_ATTRIBUTE_TYPE_INVALID},
	    {CKM_EC_EDWARDS_KEY_PAIR_GEN,
	     {{CKA_PRIVATE, &yes, sizeof yes}},
	     {{0}},
	     CKR_ATTRIBUTE_VALUE_INVALID},
	    {CKM_EC_EDWARDS_KEY_PAIR_GEN,
	     {{CKA_CLASS, &pub_class, sizeof pub_class}},
	     {{CKA_ALWAYS_AUTHENTICATE, &yes, sizeof yes}},
	     CKR_ATTRIBUTE_VALUE_INVALID},
	    /* not a key pair mechanism */
	    {CKM_ECDSA, {{0}}, {{0}}, CKR_MECHANISM_INVALID},
	    {CKM_RSA_PKCS, {{0}}, {{0}}, CKR_MECHANISM_INVALID},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CK_ULONG n_pub = 0, n_priv = 0;
		CK_RV rv;

		/* {0} ends a list (CKA_CLASS is 0: the value says) */
		while (n_pub < 3 && cases[i].pub[n_pub].pValue != NULL)
			n_pub++;
		while (n_priv < 2 && cases[i].priv[n_priv].pValue != NULL)
			n_priv++;
		rv = generate(session,
			      cases[i].mech,
			      cases[i].pub,
			      n_pub,
			      cases[i].priv,
			      n_priv,
			      &pub,
			      &priv);
		if (rv != cases[i].want) {
			fprintf(stderr,
				"%s: bad template %zu: 0x%lx, expected 0x%lx\n",
				progname,
				i,
				(unsigned long)rv,
				(unsigned long)cases[i].want);
			exit(1);
		}
	}
	CHECK(p11->C_GenerateKeyPair(session, &with_param, NULL, 0, NULL, 0, &pub, &priv),
	      CKR_MECHANISM_PARAM_INVALID);
	CHECK(generate(session, CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0, NULL, 0, NULL, &priv),
	      CKR_ARGUMENTS_BAD);
	CHECK(generate(session, CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 1, NULL, 0, &pub, &priv),
	      CKR_ARGUMENTS_BAD);
	CHECK(p11->C_GenerateKeyPair(session, NULL, NULL, 0, NULL, 0, &pub, &priv),
	      CKR_ARGUMENTS_BAD);
	ASSERT(count_objects(session, CKO_PRIVATE_KEY) == before);
}

/* "generate": bad templates, then a P-256 and an Ed25519 key that sign at
 * once; prints the new keys' ids */
static void
test_generate(void)
{
	CK_SESSION_HANDLE ro, session;
	CK_SLOT_ID slot;
	CK_MECHANISM_INFO info;
	CK_OBJECT_HANDLE pub, priv, pub2, priv2;
	CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY;
	unsigned char asked_id[] = {0x01, 0x02};
	unsigned char id[64], point[128], params[16], sig[64], label[32];
	CK_KEY_TYPE type;
	CK_BBOOL sign_ok, derive_ok, decrypt_ok;
	CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, NULL, 0};
	CK_ULONG len, before;
	CK_ATTRIBUTE pub_templ[] = {
	    {CKA_TOKEN, &yes, sizeof yes},
	    {CKA_EC_PARAMS, (void *)p256_oid, sizeof p256_oid},
	    {CKA_VERIFY, &yes, sizeof yes},
	    {CKA_LABEL, "gen p256", 8},
	    {CKA_ID, asked_id, sizeof asked_id},
	    {CKA_PRIVATE, &no, sizeof no},
	};
	CK_ATTRIBUTE priv_templ[] = {
	    {CKA_CLASS, &priv_class, sizeof priv_class},
	    {CKA_TOKEN, &yes, sizeof yes},
	    {CKA_PRIVATE, &yes, sizeof yes},
	    {CKA_SENSITIVE, &yes, sizeof yes},
	    {CKA_EXTRACTABLE, &no, sizeof no},
	    {CKA_SIGN, &yes, sizeof yes},
	    {CKA_DERIVE, &yes, sizeof yes},
	    {CKA_DECRYPT, &no, sizeof no},
	    {CKA_LABEL, "gen p256", 8},
	    {CKA_ID, asked_id, sizeof asked_id},
	};
	CK_ATTRIBUTE attrs[6];
	CK_ATTRIBUTE by_label[] = {
	    {CKA_CLASS, &priv_class, sizeof priv_class},
	    {CKA_LABEL, "gen p256", 8},
	};
	CK_ATTRIBUTE ed_priv[] = {{CKA_LABEL, "gen ed25519", 11}, {CKA_SIGN, &yes, sizeof yes}};

	init();
	slot = first_slot();
	/* the soft-key store makes keys: the mechanisms say so */
	ASSERT(has_mechanism(slot, CKM_RSA_PKCS_KEY_PAIR_GEN));
	ASSERT(has_mechanism(slot, CKM_EC_KEY_PAIR_GEN));
	ASSERT(has_mechanism(slot, CKM_EC_EDWARDS_KEY_PAIR_GEN));
	CHECK(p11->C_GetMechanismInfo(slot, CKM_RSA_PKCS_KEY_PAIR_GEN, &info), CKR_OK);
	ASSERT((info.flags & CKF_GENERATE_KEY_PAIR) && info.ulMinKeySize == 2048 &&
	       info.ulMaxKeySize == 4096);
	CHECK(p11->C_GetMechanismInfo(slot, CKM_EC_KEY_PAIR_GEN, &info), CKR_OK);
	ASSERT(info.flags & CKF_GENERATE_KEY_PAIR);
	CHECK(p11->C_GetMechanismInfo(slot, CKM_ECDSA, &info), CKR_OK);
	ASSERT(!(info.flags & CKF_GENERATE_KEY_PAIR));

	/* a token object needs a read-write session */
	CHECK(p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_OK);
	CHECK(generate(ro, CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0, NULL, 0, &pub, &priv),
	      CKR_SESSION_READ_ONLY);
	CHECK(p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &session),
	      CKR_OK);
	CHECK(generate(0x7fff, CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0, NULL, 0, &pub, &priv),
	      CKR_SESSION_HANDLE_INVALID);
	test_generate_bad(session);

	before = count_objects(session, CKO_PRIVATE_KEY);
	CHECK(generate(session,
		       CKM_EC_KEY_PAIR_GEN,
		       pub_templ,
		       sizeof pub_templ / sizeof pub_templ[0],
		       priv_templ,
		       sizeof priv_templ / sizeof priv_templ[0],
		       &pub,
		       &priv),
	      CKR_OK);
	ASSERT(pub != priv);
	ASSERT(count_objects(session, CKO_PRIVATE_KEY) == before + 1);
	/* findable at once, from this session and another */
	CHECK(p11->C_FindObjectsInit(ro, by_label, 2), CKR_OK);
	CHECK(p11->C_FindObjects(ro, &priv2, 1, &len), CKR_OK);
	CHECK(p11->C_FindObjectsFinal(ro), CKR_OK);
	ASSERT(len == 1 && priv2 == priv);
	/* what it is: the template's label and usage, keymux's id */
	attrs[0] = (CK_ATTRIBUTE){CKA_ID, id, sizeof id};
	attrs[1] = (CK_ATTRIBUTE){CKA_KEY_TYPE, &type, sizeof type};
	attrs[2] = (CK_ATTRIBUTE){CKA_SIGN, &sign_ok, sizeof sign_ok};
	attrs[3] = (CK_ATTRIBUTE){CKA_DERIVE, &derive_ok, sizeof derive_ok};
	attrs[4] = (CK_ATTRIBUTE){CKA_DECRYPT, &decrypt_ok, sizeof decrypt_ok};
	attrs[5] = (CK_ATTRIBUTE){CKA_LABEL, label, sizeof label};
	CHECK(p11->C_GetAttributeValue(session, priv, attrs, 6), CKR_OK);
	ASSERT(attrs[0].ulValueLen == 32);
	ASSERT(type == CKK_EC && sign_ok && derive_ok && !decrypt_ok);
	ASSERT(attrs[5].ulValueLen == 8 && memcmp(label, "gen p256", 8) == 0);
	attrs[0] = (CK_ATTRIBUTE){CKA_EC_PARAMS, params, sizeof params};
	attrs[1] = (CK_ATTRIBUTE){CKA_EC_POINT, point, sizeof point};
	CHECK(p11->C_GetAttributeValue(session, pub, attrs, 2), CKR_OK);
	ASSERT(attrs[0].ulValueLen == sizeof p256_oid &&
	       memcmp(params, p256_oid, sizeof p256_oid) == 0);
	/* an uncompressed P-256 point in an OCTET STRING */
	ASSERT(attrs[1].ulValueLen == 67 && point[2] == 0x04);
	/* it signs */
	CHECK(p11->C_SignInit(session, &ecdsa, priv), CKR_OK);
	len = sizeof sig;
	CHECK(p11->C_Sign(session, (CK_BYTE_PTR)message, sizeof message - 1, sig, &len), CKR_OK);
	ASSERT(len == 64);
	printf("p256 ");
	for (int i = 0; i < 32; i++)
		printf("%02x", id[i]);
	printf("\n");

	/* Ed25519 without CKA_EC_PARAMS: the one Edwards curve */
	CHECK(generate(session, CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0, ed_priv, 2, &pub2, &priv2),
	      CKR_OK);
	ASSERT(pub2 != pub && priv2 != priv);
	attrs[0] = (CK_ATTRIBUTE){CKA_ID, id, sizeof id};
	attrs[1] = (CK_ATTRIBUTE){CKA_KEY_TYPE, &type, sizeof type};
	CHECK(p11->C_GetAttributeValue(session, priv2, attrs, 2), CKR_OK);
	ASSERT(attrs[0].ulValueLen == 32 && type == CKK_EC_EDWARDS);
	CHECK(sign_ed25519(session, priv2, sig), CKR_OK);
	printf("ed25519 ");
	for (int i = 0; i < 32; i++)
		printf("%02x", id[i]);
	printf("\n");
	CHECK(p11->C_Finalize(NULL), CKR_OK);
}

/* the slot of the device with id @device: "keymux DEVICE" */
static CK_SLOT_ID
device_slot(const char *device)
{
	CK_SLOT_ID slots[8], slot = 0;
	CK_SLOT_INFO slot_info;
	CK_ULONG count = 8;
	char want[64];

	snprintf(want, sizeof want, "keymux %s ", device);
	CHECK(p11->C_GetSlotList(CK_TRUE, slots, &count), CKR_OK);
	for (CK_ULONG i = 0; i < count; i++) {
		CHECK(p11->C_GetSlotInfo(slots[i], &slot_info), CKR_OK);
		if (memcmp(slot_info.slotDescription, want, strlen(want)) == 0)
			slot = slots[i];
	}
	ASSERT(slot != 0);
	return slot;
}

/* "tpmgen DEVICE": a TPM makes RSA keys up to 3072 bits and EC keys, no
 * Ed25519; prints the new P-256 key's id */
static void
test_tpmgen(const char *device)
{
	CK_SESSION_HANDLE session;
	CK_MECHANISM_INFO info;
	CK_OBJECT_HANDLE pub, priv;
	CK_SLOT_ID slot;
	CK_ULONG bits = 4096, len;
	CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, NULL, 0};
	unsigned char id[32], sig[64];
	CK_ATTRIBUTE rsa_templ[] = {{CKA_MODULUS_BITS, &bits, sizeof bits}};
	/* what pkcs11-tool asks for an EC key */
	CK_ATTRIBUTE pub_templ[] = {
	    {CKA_EC_PARAMS, (void *)p256_oid, sizeof p256_oid},
	    {CKA_VERIFY, &yes, sizeof yes},
	    {CKA_DERIVE, &yes, sizeof yes},
	};
	CK_ATTRIBUTE priv_templ[] = {
	    {CKA_LABEL, "tpm p256", 8},
	    {CKA_SIGN, &yes, sizeof yes},
	    {CKA_DERIVE, &yes, sizeof yes},
	};
	CK_ATTRIBUTE attr = {CKA_ID, id, sizeof id};

	init();
	slot = device_slot(device);
	ASSERT(has_mechanism(slot, CKM_RSA_PKCS_KEY_PAIR_GEN));
	ASSERT(has_mechanism(slot, CKM_EC_KEY_PAIR_GEN));
	ASSERT(!has_mechanism(slot, CKM_EC_EDWARDS_KEY_PAIR_GEN));
	CHECK(p11->C_GetMechanismInfo(slot, CKM_RSA_PKCS_KEY_PAIR_GEN, &info), CKR_OK);
	ASSERT(info.ulMinKeySize == 2048 && info.ulMaxKeySize == 3072);
	CHECK(p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &session),
	      CKR_OK);
	CHECK(generate(session, CKM_RSA_PKCS_KEY_PAIR_GEN, rsa_templ, 1, NULL, 0, &pub, &priv),
	      CKR_ATTRIBUTE_VALUE_INVALID);
	CHECK(generate(session, CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0, NULL, 0, &pub, &priv),
	      CKR_MECHANISM_INVALID);
	CHECK(generate(session, CKM_EC_KEY_PAIR_GEN, pub_templ, 3, priv_templ, 3, &pub, &priv),
	      CKR_OK);
	CHECK(p11->C_GetAttributeValue(session, priv, &attr, 1), CKR_OK);
	CHECK(p11->C_SignInit(session, &ecdsa, priv), CKR_OK);
	len = sizeof sig;
	CHECK(p11->C_Sign(session, (CK_BYTE_PTR)message, sizeof message - 1, sig, &len), CKR_OK);
	ASSERT(len == 64);
	printf("tpm p256 ");
	for (int i = 0; i < 32; i++)
		printf("%02x", id[i]);
	printf("\n");
	CHECK(p11->C_Finalize(NULL), CKR_OK);
}

/* "nogen DEVICE": the device with that id makes no keys through PKCS#11 */
static void
test_nogen(const char *device)
{
	CK_SESSION_HANDLE session;
	CK_MECHANISM_INFO info;
	CK_OBJECT_HANDLE pub, priv;
	CK_SLOT_ID slot;
	CK_ATTRIBUTE pub_templ[] = {{CKA_EC_PARAMS, (void *)p256_oid, sizeof p256_oid}};

	init();
	slot = device_slot(device);
	ASSERT(!has_mechanism(slot, CKM_RSA_PKCS_KEY_PAIR_GEN));
	ASSERT(!has_mechanism(slot, CKM_EC_KEY_PAIR_GEN));
	ASSERT(!has_mechanism(slot, CKM_EC_EDWARDS_KEY_PAIR_GEN));
	ASSERT(has_mechanism(slot, CKM_ECDSA));
	CHECK(p11->C_GetMechanismInfo(slot, CKM_EC_KEY_PAIR_GEN, &info), CKR_MECHANISM_INVALID);
	CHECK(p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &session),
	      CKR_OK);
	CHECK(generate(session, CKM_EC_KEY_PAIR_GEN, pub_templ, 1, NULL, 0, &pub, &priv),
	      CKR_MECHANISM_INVALID);
	CHECK(p11->C_Finalize(NULL), CKR_OK);
	printf("no key pair generation\n");
}

/* ---- multi-part decryption ---- */

static unsigned char *
read_file(const char *path, size_t *len)
{
	static unsigned char buf[4][1024];
	static int next;
	unsigned char *out = buf[next++ % 4];
	FILE *f = fopen(path, "rb");

	ASSERT(f != NULL);
	*len = fread(out, 1, sizeof buf[0], f);
	ASSERT(fclose(f) == 0 && *len > 0 && *len < sizeof buf[0]);
	return out;
}

/* "decrypt": RSAKEYID's key, PKCS#1 v1.5 and OAEP ciphertexts of PLAIN */
static void
test_decrypt(const char *pkcs1_path, const char *oaep_path, const char *plain_path)
{
	CK_SESSION_HANDLE session;
	CK_OBJECT_HANDLE rsa;
	CK_RSA_PKCS_OAEP_PARAMS oaep_params = {CKM_SHA256,
					       CKG_MGF1_SHA256,
					       CKZ_DATA_SPECIFIED,
					       NULL,
					       0};
	CK_MECHANISM pkcs1 = {CKM_RSA_PKCS, NULL, 0};
	CK_MECHANISM oaep = {CKM_RSA_PKCS_OAEP, &oaep_params, sizeof oaep_params};
	size_t ct_len, oaep_len, plain_len;
	unsigned char *ct = read_file(pkcs1_path, &ct_len);
	unsigned char *oct = read_file(oaep_path, &oaep_len);
	unsigned char *plain = read_file(plain_path, &plain_len);
	unsigned char out[512];
	CK_ULONG len;
	CK_RV rv;

	ASSERT(ct_len == 256 && oaep_len == 256);
	init();
	session = open_session();
	rsa = find_key(session, rsa_id, CKO_PRIVATE_KEY);
	len = sizeof out;
	CHECK(p11->C_DecryptUpdate(session, ct, 10, out, &len), CKR_OPERATION_NOT_INITIALIZED);
	CHECK(p11->C_DecryptFinal(session, out, &len), CKR_OPERATION_NOT_INITIALIZED);

	/* PKCS#1 v1.5 in three parts; a size query takes nothing in */
	CHECK(p11->C_DecryptInit(session, &pkcs1, rsa), CKR_OK);
	len = 99;
	CHECK(p11->C_DecryptUpdate(session, ct, 100, NULL, &len), CKR_OK);
	ASSERT(len == 0);
	len = sizeof out;
	CHECK(p11->C_DecryptUpdate(session, ct, 100, out, &len), CKR_OK);
	ASSERT(len == 0);
	len = sizeof out;
	CHECK(p11->C_DecryptUpdate(session, ct + 100, 0, out, &len), CKR_OK);
	CHECK(p11->C_DecryptUpdate(session, ct + 100, 156, out, &len), CKR_OK);
	ASSERT(len == 0);
	/* single part after multi-part is not allowed */
	len = sizeof out;
	CHECK(p11->C_Decrypt(session, ct, 256, out, &len), CKR_OPERATION_NOT_INITIALIZED);
	CHECK(p11->C_DecryptInit(session, &pkcs1, rsa), CKR_OK);
	CHECK(p11->C_DecryptUpdate(session, ct, 200, out, &len), CKR_OK);
	CHECK(p11->C_DecryptUpdate(session, ct + 200, 56, out, &len), CKR_OK);
	/* the length, then too small a buffer: the plaintext is kept */
	len = 0;
	CHECK(p11->C_DecryptFinal(session, NULL, &len), CKR_OK);
	ASSERT(len == plain_len);
	len = plain_len - 1;
	CHECK(p11->C_DecryptFinal(session, out, &len), CKR_BUFFER_TOO_SMALL);
	ASSERT(len == plain_len);
	memset(out, 0, sizeof out);
	CHECK(p11->C_DecryptFinal(session, out, &len), CKR_OK);
	ASSERT(len == plain_len && memcmp(out, plain, plain_len) == 0);
	CHECK(p11->C_DecryptFinal(session, out, &len), CKR_OPERATION_NOT_INITIALIZED);

	/* OAEP, byte by byte */
	CHECK(p11->C_DecryptInit(session, &oaep, rsa), CKR_OK);
	for (size_t i = 0; i < oaep_len; i++) {
		len = sizeof out;
		CHECK(p11->C_DecryptUpdate(session, oct + i, 1, out, &len), CKR_OK);
		ASSERT(len == 0);
	}
	len = sizeof out;
	memset(out, 0, sizeof out);
	CHECK(p11->C_DecryptFinal(session, out, &len), CKR_OK);
	ASSERT(len == plain_len && memcmp(out, plain, plain_len) == 0);

	/* more than a block: refused, and the operation is over */
	CHECK(p11->C_DecryptInit(session, &pkcs1, rsa), CKR_OK);
	len = sizeof out;
	CHECK(p11->C_DecryptUpdate(session, ct, 200, out, &len), CKR_OK);
	CHECK(p11->C_DecryptUpdate(session, ct, 57, out, &len), CKR_ENCRYPTED_DATA_LEN_RANGE);
	CHECK(p11->C_DecryptFinal(session, out, &len), CKR_OPERATION_NOT_INITIALIZED);
	/* less than a block */
	CHECK(p11->C_DecryptInit(session, &oaep, rsa), CKR_OK);
	CHECK(p11->C_DecryptUpdate(session, oct, 255, out, &len), CKR_OK);
	len = sizeof out;
	CHECK(p11->C_DecryptFinal(session, out, &len), CKR_ENCRYPTED_DATA_LEN_RANGE);
	CHECK(p11->C_DecryptFinal(session, out, &len), CKR_OPERATION_NOT_INITIALIZED);
	/* and in one part */
	CHECK(p11->C_DecryptInit(session, &pkcs1, rsa), CKR_OK);
	len = sizeof out;
	CHECK(p11->C_Decrypt(session, out, 257, out, &len), CKR_ENCRYPTED_DATA_LEN_RANGE);
	/* a damaged ciphertext fails in C_DecryptFinal (keymuxd says Failed),
	 * and that ends the operation */
	CHECK(p11->C_DecryptInit(session, &oaep, rsa), CKR_OK);
	memcpy(out, oct, 256);
	out[100] ^= 0x55;
	CHECK(p11->C_DecryptUpdate(session, out, 256, out + 256, &len), CKR_OK);
	len = sizeof out;
	rv = p11->C_DecryptFinal(session, out, &len);
	ASSERT(rv == CKR_FUNCTION_FAILED || rv == CKR_ENCRYPTED_DATA_INVALID);
	CHECK(p11->C_DecryptFinal(session, out, &len), CKR_OPERATION_NOT_INITIALIZED);
	CHECK(p11->C_Finalize(NULL), CKR_OK);
	printf("multi-part decryption\n");
}

/* ---- what the module keeps of a plaintext or a shared secret ---- */

/* a file read without stdio, whose buffer would keep a copy */
static size_t
read_secret(const char *path, unsigned char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	ASSERT(fd >= 0);
	n = read(fd, buf, size);
	ASSERT(n > 0 && (size_t)n < size && close(fd) == 0);
	return (size_t)n;
}

/*
 * "memscan RSAKEYID ECKEYID CT PLAIN PEER SHARED": decrypts CT (PKCS#1 v1.5,
 * through a size query and a short buffer) and derives a secret with the
 * raw P-256 point PEER (an extractable session key, read and destroyed),
 * checks both, says "control" while its own buffers still hold them, then
 * wipes those and says "scan": tests/test-pkcs11-memscan.sh searches this
 * process's memory each time.
 */
static void
test_memscan(char **args)
{
	CK_SESSION_HANDLE session;
	CK_OBJECT_HANDLE rsa, ec, derived;
	CK_MECHANISM pkcs1 = {CKM_RSA_PKCS, NULL, 0};
	CK_OBJECT_CLASS secret_class = CKO_SECRET_KEY;
	CK_KEY_TYPE generic = CKK_GENERIC_SECRET;
	CK_ECDH1_DERIVE_PARAMS params = {CKD_NULL, 0, NULL, 0, NULL};
	CK_MECHANISM ecdh = {CKM_ECDH1_DERIVE, &params, sizeof params};
	CK_BBOOL yes_ = CK_TRUE, no_ = CK_FALSE;
	CK_ATTRIBUTE templ[] = {
	    {CKA_CLASS, &secret_class, sizeof secret_class},
	    {CKA_KEY_TYPE, &generic, sizeof generic},
	    {CKA_SENSITIVE, &no_, sizeof no_},
	    {CKA_EXTRACTABLE, &yes_, sizeof yes_},
	};
	unsigned char ct[512], peer[128], plain[256], shared[128], out[512], value[128];
	size_t ct_len = read_secret(args[2], ct, sizeof ct);
	size_t plain_len = read_secret(args[3], plain, sizeof plain);
	size_t peer_len = read_secret(args[4], peer, sizeof peer);
	size_t shared_len = read_secret(args[5], shared, sizeof shared);
	CK_ATTRIBUTE attr = {CKA_VALUE, value, sizeof value};
	CK_ULONG len;

	parse_id(args[0], rsa_id);
	parse_id(args[1], key_id);
	init();
	session = open_session();
	rsa = find_key(session, rsa_id, CKO_PRIVATE_KEY);
	ec = find_key(session, key_id, CKO_PRIVATE_KEY);
	CHECK(p11->C_DecryptInit(session, &pkcs1, rsa), CKR_OK);
	CHECK(p11->C_Decrypt(session, ct, ct_len, NULL, &len), CKR_OK);
	len = 1;
	CHECK(p11->C_Decrypt(session, ct, ct_len, out, &len), CKR_BUFFER_TOO_SMALL);
	len = sizeof out;
	CHECK(p11->C_Decrypt(session, ct, ct_len, out, &len), CKR_OK);
	ASSERT(len == plain_len && memcmp(out, plain, plain_len) == 0);
	params.pPublicData = peer;
	params.ulPublicDataLen = peer_len;
	CHECK(p11->C_DeriveKey(session, &ecdh, ec, templ, 4, &derived), CKR_OK);
	CHECK(p11->C_GetAttributeValue(session, derived, &attr, 1), CKR_OK);
	ASSERT(attr.ulValueLen == shared_len && memcmp(value, shared, shared_len) == 0);
	CHECK(p11->C_DestroyObject(session, derived), CKR_OK);
	wait_line("control");
	explicit_bzero(out, sizeof out);
	explicit_bzero(value, sizeof value);
	explicit_bzero(plain, sizeof plain);
	explicit_bzero(shared, sizeof shared);
	wait_line("scan");
	CHECK(p11->C_Finalize(NULL), CKR_OK);
}

/* ---- slots and slot events, driven by the test script ---- */

static pthread_t waiter;
static CK_RV waiter_rv;
static CK_SLOT_ID waiter_slot;

static void *
waiter_main(void *data)
{
	waiter_rv = p11->C_WaitForSlotEvent(0, &waiter_slot, NULL);
	return NULL;
}

static void
say_event(const char *prefix, CK_RV rv, CK_SLOT_ID slot)
{
	if (rv == CKR_OK)
		printf("%sevent %lu\n", prefix, (unsigned long)slot);
	else if (rv == CKR_NO_EVENT)
		printf("%sno event\n", prefix);
	else if (rv == CKR_CRYPTOKI_NOT_INITIALIZED)
		printf("%snot initialized\n", prefix);
	else
		printf("%srv 0x%lx\n", prefix, (unsigned long)rv);
}

/* the slot of keymux device @device (its description: "keymux DEVICE"),
 * 0 if none is listed */
static CK_SLOT_ID
slot_of(const char *device)
{
	CK_SLOT_ID list[64];
	CK_ULONG count = 64;
	char want[65];

	ASSERT(strlen(device) <= 57);
	memset(want, ' ', 64);
	memcpy(want, "keymux ", 7);
	memcpy(want + 7, device, strlen(device));
	want[64] = '\0';
	CHECK(p11->C_GetSlotList(CK_FALSE, list, &count), CKR_OK);
	for (CK_ULONG i = 0; i < count; i++) {
		CK_SLOT_INFO info;

		CHECK(p11->C_GetSlotInfo(list[i], &info), CKR_OK);
		if (memcmp(info.slotDescription, want, 64) == 0)
			return list[i];
	}
	return 0;
}

/* private key objects labelled @label */
static CK_ULONG
count_labelled(CK_SESSION_HANDLE session, const char *label)
{
	CK_OBJECT_CLASS klass = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE templ[] = {
	    {CKA_CLASS, &klass, sizeof klass},
	    {CKA_LABEL, (void *)label, strlen(label)},
	};
	CK_OBJECT_HANDLE found[8];
	CK_ULONG count = 0;

	CHECK(p11->C_FindObjectsInit(session, templ, 2), CKR_OK);
	CHECK(p11->C_FindObjects(session, found, 8, &count), CKR_OK);
	CHECK(p11->C_FindObjectsFinal(session), CKR_OK);
	return count;
}

static void
test_events(void)
{
	CK_SESSION_HANDLE session = 0;
	char line[256];

	progname = "kmx-test-pkcs11 events";
	while (fgets(line, sizeof line, stdin) != NULL) {
		char *arg = strchr(line, ' ');
		CK_SLOT_ID slot = 0;
		CK_RV rv;

		line[strcspn(line, "\n")] = '\0';
		if (arg != NULL)
			*arg++ = '\0';
		if (strcmp(line, "quit") == 0)
			break;
		if (strcmp(line, "init") == 0) {
			init();
			printf("ok\n");
		} else if (strcmp(line, "finalize") == 0) {
			CHECK(p11->C_Finalize(NULL), CKR_OK);
			printf("ok\n");
		} else if (strcmp(line, "slot") == 0 && arg != NULL) {
			printf("slot %lu\n", (unsigned long)slot_of(arg));
		} else if (strcmp(line, "present") == 0 && arg != NULL) {
			CK_SLOT_INFO info;
			CK_TOKEN_INFO token;

			slot = strtoul(arg, NULL, 10);
			CHECK(p11->C_GetSlotInfo(slot, &info), CKR_OK);
			/* the token agrees with the slot */
			rv = p11->C_GetTokenInfo(slot, &token);
			ASSERT(rv ==
			       ((info.flags & CKF_TOKEN_PRESENT) ? CKR_OK : CKR_TOKEN_NOT_PRESENT));
			printf("%s\n", (info.flags & CKF_TOKEN_PRESENT) ? "present" : "absent");
		} else if (strcmp(line, "count") == 0) {
			CK_ULONG count = 0;

			CHECK(p11->C_GetSlotList(CK_TRUE, NULL, &count), CKR_OK);
			printf("count %lu\n", (unsigned long)count);
		} else if (strcmp(line, "poll") == 0) {
			rv = p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &slot, NULL);
			say_event("", rv, slot);
		} else if (strcmp(line, "wait") == 0) {
			rv = p11->C_WaitForSlotEvent(0, &slot, NULL);
			say_event("", rv, slot);
		} else if (strcmp(line, "bgwait") == 0) {
			ASSERT(pthread_create(&waiter, NULL, waiter_main, NULL) == 0);
			printf("waiting\n");
		} else if (strcmp(line, "join") == 0) {
			ASSERT(pthread_join(waiter, NULL) == 0);
			say_event("bg ", waiter_rv, waiter_slot);
		} else if (strcmp(line, "bad") == 0) {
			CHECK(p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, NULL, NULL),
			      CKR_ARGUMENTS_BAD);
			CHECK(p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &slot, &slot),
			      CKR_ARGUMENTS_BAD);
			printf("ok\n");
		} else if (strcmp(line, "session") == 0 && arg != NULL) {
			slot = strtoul(arg, NULL, 10);
			CHECK(p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &session),
			      CKR_OK);
			printf("ok\n");
		} else if (strcmp(line, "state") == 0) {
			CK_STATE state = session_state(session);
			printf("%s\n", state == CKS_RO_PUBLIC_SESSION ? "public" : "user");
		} else if (strcmp(line, "login-required") == 0 && arg != NULL) {
			CK_TOKEN_INFO token;

			CHECK(p11->C_GetTokenInfo(strtoul(arg, NULL, 10), &token), CKR_OK);
			printf("%s\n", (token.flags & CKF_LOGIN_REQUIRED) ? "yes" : "no");
		} else if (strcmp(line, "find") == 0 && arg != NULL) {
			printf("found %lu\n", (unsigned long)count_labelled(session, arg));
		} else {
			fprintf(stderr, "%s: unknown command '%s'\n", progname, line);
			exit(2);
		}
		fflush(stdout);
	}
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[2], "events") == 0) {
		load(argv[1]);
		test_events();
		return 0;
	}
	if (argc < 4) {
		fprintf(stderr,
			"usage: %s MODULE rules|threads|fork|locked|restart|generate|nogen|decrypt "
			"KEYID ...\n",
			progname);
		return 2;
	}
	load(argv[1]);
	if (strcmp(argv[2], "nogen") != 0 && strcmp(argv[2], "tpmgen") != 0)
		parse_id(argv[3], key_id);
	if (strcmp(argv[2], "rules") == 0 && argc == 5) {
		parse_id(getenv("RSAKEYID"), rsa_id);
		test_rules(argv[4]);
	} else if (strcmp(argv[2], "threads") == 0) {
		test_threads();
	} else if (strcmp(argv[2], "fork") == 0) {
		test_fork();
	} else if (strcmp(argv[2], "locked") == 0) {
		test_locked();
	} else if (strcmp(argv[2], "restart") == 0) {
		test_restart();
	} else if (strcmp(argv[2], "generate") == 0) {
		test_generate();
	} else if (strcmp(argv[2], "tpmgen") == 0) {
		test_tpmgen(argv[3]);
	} else if (strcmp(argv[2], "nogen") == 0) {
		test_nogen(argv[3]);
	} else if (strcmp(argv[2], "memscan") == 0 && argc == 9) {
		test_memscan(argv + 3);
	} else if (strcmp(argv[2], "decrypt") == 0 && argc == 7) {
		parse_id(argv[3], rsa_id);
		test_decrypt(argv[4], argv[5], argv[6]);
	} else {
		fprintf(stderr, "%s: unknown test %s\n", progname, argv[2]);
		return 2;
	}
	return 0;
}
