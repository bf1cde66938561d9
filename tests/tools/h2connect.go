// SPDX-License-Identifier: Apache-2.0
//
// h2connect: an HBONE client on an independent stack (Go's crypto/tls and
// net/http's HTTP/2), for the interoperability checks of tests/netns: one
// HTTP/2 CONNECT over mutual TLS 1.3 to a tunnel's port 15008, a message
// through the stream and its echo back. The server's certificate is
// checked against the CA and must carry the expected SPIFFE URI SAN.
//
//	h2connect -addr IP:15008 -authority IP:PORT -cert C -key K -ca CA \
//	          -expect spiffe://... [-msg TEXT]
//
// Prints "ok status=200 cipher=<TLS suite> echo=<bytes>" and exits 0, or
// "error: <reason>" and exits 1. Go's TLS 1.3 client offers its own suite
// order (AES-128-GCM first on AES hardware) and cannot be limited; the
// checks of single suites use openssl s_client.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	addr := flag.String("addr", "", "tunnel address ip:15008")
	authority := flag.String("authority", "", "CONNECT :authority ip:port")
	certf := flag.String("cert", "", "client certificate (PEM)")
	keyf := flag.String("key", "", "client key (PEM)")
	caf := flag.String("ca", "", "root CA (PEM)")
	expect := flag.String("expect", "", "server SPIFFE ID")
	msg := flag.String("msg", "h2connect interop", "payload echoed back")
	flag.Parse()
	if err := run(*addr, *authority, *certf, *keyf, *caf, *expect, *msg); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
}

func run(addr, authority, certf, keyf, caf, expect, msg string) error {
	cert, err := tls.LoadX509KeyPair(certf, keyf)
	if err != nil {
		return err
	}
	pem, err := os.ReadFile(caf)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return errors.New("no CA certificate in " + caf)
	}
	var cipher uint16
	conf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"h2"},
		// The server's name is its SPIFFE URI SAN, which crypto/tls does
		// not match: the chain and the SAN are checked below instead.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no server certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			leaf := cs.PeerCertificates[0]
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				return err
			}
			for _, u := range leaf.URIs {
				if u.String() == expect {
					cipher = cs.CipherSuite
					return nil
				}
			}
			return fmt.Errorf("server identity is not %s", expect)
		},
	}
	tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodConnect, "https://"+addr, pr)
	if err != nil {
		return err
	}
	req.Host = authority
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		return fmt.Errorf("not HTTP/2: %s", resp.Proto)
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if _, err := pw.Write([]byte(msg)); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(resp.Body, got); err != nil {
		return fmt.Errorf("reading the echo: %v", err)
	}
	if !bytes.Equal(got, []byte(msg)) {
		return fmt.Errorf("echo %q, sent %q", got, msg)
	}
	pw.Close()
	fmt.Printf("ok status=%d cipher=%s echo=%d\n", resp.StatusCode, tls.CipherSuiteName(cipher), len(got))
	return nil
}
