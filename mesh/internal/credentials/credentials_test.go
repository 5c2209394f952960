package credentials

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

// testCA is a CA like kwok's: RSA, PKCS#1 PEM.
func testCA(t *testing.T) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kwok-ca"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), cert
}

func TestKubeconfigInlineClientCertificate(t *testing.T) {
	caPEM, keyPEM, ca := testCA(t)
	now := time.Now()
	out, err := Kubeconfig(Request{CACert: caPEM, CAKey: keyPEM, Server: "https://127.0.0.1:6443", Cluster: "c0123",
		User: "alice", Groups: []string{"asm-tcp-shift:istio-admin"}, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// Inline data only: nothing istiod's sanitizer or a Pulumi secret would have to resolve from a file.
	for _, field := range []string{"client-certificate:", "client-key:", "certificate-authority:", "tokenFile", "exec:"} {
		if strings.Contains(string(out), field) {
			t.Errorf("kubeconfig has %q", field)
		}
	}
	cfg, err := clientcmd.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CurrentContext != "c0123" || cfg.Contexts["c0123"].Cluster != "c0123" || cfg.Clusters["c0123"].Server != "https://127.0.0.1:6443" {
		t.Fatalf("context/cluster: %+v", cfg)
	}
	b, _ := pem.Decode(cfg.AuthInfos["alice"].ClientCertificateData)
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "alice" || strings.Join(cert.Subject.Organization, ",") != "asm-tcp-shift:istio-admin" {
		t.Errorf("subject %v", cert.Subject)
	}
	// Verifies as kube-apiserver's x509 authenticator does: a client-auth certificate chaining to the client CA.
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify: %v", err)
	}
	// The key in the kubeconfig is the certificate's.
	kb, _ := pem.Decode(cfg.AuthInfos["alice"].ClientKeyData)
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil || !key.PublicKey.Equal(cert.PublicKey) {
		t.Errorf("key does not match the certificate: %v", err)
	}
}

func TestExpiredCertificateDoesNotVerify(t *testing.T) {
	caPEM, keyPEM, ca := testCA(t)
	now := time.Now()
	out, err := Kubeconfig(Request{CACert: caPEM, CAKey: keyPEM, Server: "https://127.0.0.1:6443", Cluster: "x", User: "bob",
		NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := clientcmd.Load(out)
	b, _ := pem.Decode(cfg.AuthInfos["bob"].ClientCertificateData)
	cert, _ := x509.ParseCertificate(b.Bytes)
	if !cert.NotAfter.Before(now) {
		t.Fatalf("notAfter %v is not in the past", cert.NotAfter)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	var invalid x509.CertificateInvalidError
	if err == nil || !asInvalid(err, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("want an expired-certificate error, got %v", err)
	}
}

func asInvalid(err error, target *x509.CertificateInvalidError) bool {
	e, ok := err.(x509.CertificateInvalidError)
	if ok {
		*target = e
	}
	return ok
}

func TestRefusals(t *testing.T) {
	caPEM, keyPEM, _ := testCA(t)
	now := time.Now()
	ok := Request{CACert: caPEM, CAKey: keyPEM, Server: "https://127.0.0.1:1", Cluster: "c", User: "u", NotBefore: now, NotAfter: now.Add(time.Hour)}
	cases := map[string]func(r *Request){
		"no server":       func(r *Request) { r.Server = "" },
		"no user":         func(r *Request) { r.User = "" },
		"inverted window": func(r *Request) { r.NotAfter = r.NotBefore.Add(-time.Second) },
		"bad CA key":      func(r *Request) { r.CAKey = []byte("not pem") },
		"bad CA cert":     func(r *Request) { r.CACert = keyPEM },
	}
	for name, mutate := range cases {
		r := ok
		mutate(&r)
		if _, err := Kubeconfig(r); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
