// Package credentials mints the kubeconfigs of the ASM-shaped local topology: a client certificate signed by a
// local API server's CA (kube-apiserver's --client-ca-file), carried inline in the kubeconfig.
//
// Inline data, not file paths, because (1) a kubeconfig is stored as one Pulumi secret, and (2) istiod's remote
// cluster kubeconfigs are sanitized: client-certificate/client-key file paths are refused unless allowed by
// PILOT_INSECURE_MULTICLUSTER_KUBECONFIG_OPTIONS (istio/istio pkg/kube/util.go sanitizeKubeConfig), while
// client-certificate-data/client-key-data pass.
//
// The certificate's subject is how kube-apiserver's x509 authenticator names the caller: CN is the user name and
// each O a group (https://kubernetes.io/docs/reference/access-authn-authz/authentication/#x509-client-certificates).
// The topology binds roles to groups, so a fresh certificate is a fresh user with exactly its group's rights.
package credentials

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/tools/clientcmd"
)

// Request describes one kubeconfig.
type Request struct {
	// CACert and CAKey: PEM of the API server's client CA (the kwok cluster's pki/ca.crt and ca.key). The CA
	// certificate is also the kubeconfig's certificate-authority-data: kwok signs the serving certificate with it.
	CACert, CAKey []byte
	// Server is the API server's URL.
	Server string
	// Cluster names the kubeconfig's cluster and context. istiod takes a remote cluster's ID from the cluster of
	// the current context (pkg/kube/multicluster/kubeconfig_files.go clusterIDFromKubeconfig).
	Cluster string
	// User is the certificate's CN (the user name); Groups its O entries.
	User   string
	Groups []string
	// NotBefore and NotAfter bound the certificate. A NotAfter in the past makes an expired credential, which
	// kube-apiserver refuses with 401 (ASM's kubeconfigs carry an ExpireTime, DescribeServiceMeshKubeconfig).
	NotBefore, NotAfter time.Time
}

// Kubeconfig returns the kubeconfig (YAML) with a new key pair and a certificate for it signed by the CA.
func Kubeconfig(r Request) ([]byte, error) {
	if r.Server == "" || r.Cluster == "" || r.User == "" {
		return nil, errors.New("server, cluster and user are required")
	}
	if !r.NotAfter.After(r.NotBefore) {
		return nil, errors.New("notAfter must be after notBefore")
	}
	caCert, err := parseCert(r.CACert)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	caKey, err := parseKey(r.CAKey)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: r.User, Organization: r.Groups},
		NotBefore:    r.NotBefore,
		NotAfter:     r.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[r.Cluster] = &clientcmdapi.Cluster{Server: r.Server, CertificateAuthorityData: r.CACert}
	cfg.AuthInfos[r.User] = &clientcmdapi.AuthInfo{
		ClientCertificateData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		ClientKeyData:         pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	cfg.Contexts[r.Cluster] = &clientcmdapi.Context{Cluster: r.Cluster, AuthInfo: r.User}
	cfg.CurrentContext = r.Cluster
	return clientcmd.Write(*cfg)
}

func parseCert(p []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(p)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

// parseKey reads the PEM key kwok writes (PKCS#1 RSA) and the other usual encodings.
func parseKey(p []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil, errors.New("no PEM key")
	}
	switch b.Type {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(b.Bytes)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, err
		}
		switch s := k.(type) {
		case *rsa.PrivateKey:
			return s, nil
		case *ecdsa.PrivateKey:
			return s, nil
		}
		return nil, fmt.Errorf("unsupported PKCS#8 key %T", k)
	}
	return nil, fmt.Errorf("unsupported PEM block %q", b.Type)
}
