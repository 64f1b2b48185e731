/*
 * tls.cpp: DICOM TLS transport layers for the acceptor and the sender (see
 * tls.h). The security profile is one of DCMTK's BCP 195 family; peers are
 * verified against the trusted CAs given (a file or a hashed folder), and
 * a server's or caller's certificate can be read back for pinning and logs.
 * Any thread: each layer is used by the one network that owns it.
 */
#include "tls.h"

#include <cstdio>
#include <cstring>

#include <sys/stat.h>

#include <openssl/x509.h>

#include "dcmtk/dcmtls/tlslayer.h"

namespace r3d_bridge_tls {

static DcmTLSSecurityProfile profile_of(enum bridge_tls_profile p)
{
	switch (p) {
	case BRIDGE_TLS_BCP195_EXTENDED:
		return TSP_Profile_BCP195_Extended;
	case BRIDGE_TLS_BCP195:
		return TSP_Profile_BCP195;
	case BRIDGE_TLS_BCP195_ND:
		break;
	}
	return TSP_Profile_BCP195_ND;
}

static bool set(const char *s)
{
	return s != NULL && s[0] != '\0';
}

DcmTLSTransportLayer *layer_new(struct r3d_err *err, T_ASC_NetworkRole role, const struct bridge_tls *t)
{
	DcmTLSTransportLayer *layer = NULL;
	OFCondition cond;

	try {
		layer = new DcmTLSTransportLayer(role, NULL, OFTrue);
		if (!*layer) {
			delete layer;
			r3d_err_set(err, R3D_EIO, "TLS: OpenSSL could not be initialised");
			return NULL;
		}
		cond = layer->setTLSProfile(profile_of(t->profile));
		if (cond.good())
			cond = layer->activateCipherSuites();
		if (cond.bad()) {
			r3d_err_set(err, R3D_EINVAL, "TLS profile: %s", cond.text());
			goto fail;
		}
		if (set(t->private_key) || set(t->certificate)) {
			if (!set(t->private_key) || !set(t->certificate)) {
				r3d_err_set(err, R3D_EINVAL, "TLS: give both a certificate and its private key");
				goto fail;
			}
			cond = layer->setPrivateKeyFile(t->private_key, DCF_Filetype_PEM);
			if (cond.bad()) {
				r3d_err_set(err, R3D_EINVAL, "TLS private key '%s': %s", t->private_key,
					    cond.text());
				goto fail;
			}
			cond = layer->setCertificateFile(t->certificate, DCF_Filetype_PEM);
			if (cond.bad()) {
				r3d_err_set(err, R3D_EINVAL, "TLS certificate '%s': %s", t->certificate,
					    cond.text());
				goto fail;
			}
			if (!layer->checkPrivateKeyMatchesCertificate()) {
				r3d_err_set(err, R3D_EINVAL, "TLS: the private key '%s' does not match the "
					    "certificate '%s'", t->private_key, t->certificate);
				goto fail;
			}
		} else if (role == NET_ACCEPTOR) {
			r3d_err_set(err, R3D_EINVAL, "TLS listener: a certificate and its private key are needed");
			goto fail;
		}
		if (set(t->trusted)) {
			struct stat st;
			bool dir = stat(t->trusted, &st) == 0 && S_ISDIR(st.st_mode);
			cond = dir ? layer->addTrustedCertificateDir(t->trusted, DCF_Filetype_PEM) :
				     layer->addTrustedCertificateFile(t->trusted, DCF_Filetype_PEM);
			if (cond.bad()) {
				r3d_err_set(err, R3D_EINVAL, "TLS trusted certificates '%s': %s", t->trusted,
					    cond.text());
				goto fail;
			}
		}
		/* A sender always verifies the server; a listener asks callers for
		 * a certificate when told to. */
		layer->setCertificateVerification(role == NET_ACCEPTOR && !t->verify_peer ?
							  DCV_ignoreCertificate : DCV_requireCertificate);
		return layer;
	} catch (...) {
		r3d_err_set(err, R3D_EIO, "TLS: unexpected error setting up the transport layer");
	}
fail:
	delete layer;
	return NULL;
}

void peer_subject(T_ASC_Association *a, char *out, size_t size)
{
	out[0] = '\0';
	if (size == 0 || a == NULL)
		return;
	unsigned long len = ASC_getPeerCertificateLength(a);
	if (len == 0 || len > 65536)
		return;
	unsigned char *der = new (std::nothrow) unsigned char[len];
	if (der == NULL)
		return;
	if (ASC_getPeerCertificate(a, der, len) == len) {
		const unsigned char *p = der;
		X509 *x = d2i_X509(NULL, &p, (long)len);
		if (x != NULL) {
			BIO *bio = BIO_new(BIO_s_mem());
			if (bio != NULL) {
				X509_NAME_print_ex(bio, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
				char *data = NULL;
				long n = BIO_get_mem_data(bio, &data);
				if (n > 0 && data != NULL)
					snprintf(out, size, "%.*s", (int)n, data);
				BIO_free(bio);
			}
			X509_free(x);
		}
	}
	delete[] der;
}

}  // namespace r3d_bridge_tls
