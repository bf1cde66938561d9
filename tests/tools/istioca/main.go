// SPDX-License-Identifier: Apache-2.0
//
// istioca: Istio's certificate service (istio.v1.auth.IstioCertificateService,
// CreateCertificate) on an independent stack, for tests/netns/test_ca_istio.sh:
// istio.io/api's generated Go code and google.golang.org/grpc over Go's
// crypto/tls. It plays istiod's part for a node agent: the bearer token must
// equal the token file's content (istiod reviews it with the API server),
// the request's metadata must name the identity (ImpersonatedIdentity) and
// that identity must be one of -allow (istiod checks a pod with that service
// account runs on the caller's node); the CSR must verify and name the same
// SPIFFE ID. It signs with the test CA for validity_duration seconds and
// answers cert_chain = [leaf, root], as istiod does. Refusals use istiod's
// codes: Unauthenticated, PermissionDenied, InvalidArgument. One line per
// request on stdout.
//
//	istioca -listen IP:PORT -cert C -key K -ca-cert ROOT -ca-key ROOTKEY \
//	        -token FILE -allow spiffe://...[,spiffe://...]
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
)

type server struct {
	pb.UnimplementedIstioCertificateServiceServer
	root      *x509.Certificate
	rootPEM   string
	rootKey   any
	tokenFile string
	allow     map[string]bool
}

func (s *server) CreateCertificate(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	resp, err := s.create(ctx, req)
	if err != nil {
		fmt.Printf("refused: %v\n", err)
	}
	return resp, err
}

func (s *server) create(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	want, err := os.ReadFile(s.tokenFile)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "token file: %v", err)
	}
	auth := md.Get("authorization")
	if len(auth) != 1 || auth[0] != "Bearer "+strings.TrimSpace(string(want)) {
		return nil, status.Error(codes.Unauthenticated, "authenticate: no valid bearer token")
	}
	id := ""
	if m := req.GetMetadata(); m != nil {
		if v, ok := m.GetFields()["ImpersonatedIdentity"]; ok {
			id = v.GetStringValue()
		}
	}
	if id == "" {
		return nil, status.Error(codes.PermissionDenied, "no ImpersonatedIdentity in the request's metadata")
	}
	if !s.allow[id] {
		return nil, status.Errorf(codes.PermissionDenied, "node is not authorized to impersonate %s", id)
	}
	block, _ := pem.Decode([]byte(req.GetCsr()))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, status.Error(codes.InvalidArgument, "csr: no PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err == nil {
		err = csr.CheckSignature()
	}
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "csr: %v", err)
	}
	if len(csr.URIs) != 1 || csr.URIs[0].String() != id {
		return nil, status.Errorf(codes.InvalidArgument, "csr names %v, not %s", csr.URIs, id)
	}
	ttl := time.Duration(req.GetValidityDuration()) * time.Second
	if ttl <= 0 || ttl > 48*time.Hour {
		return nil, status.Errorf(codes.InvalidArgument, "validity_duration %d s", req.GetValidityDuration())
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, status.Error(codes.Internal, "serial")
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		URIs:                  csr.URIs,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.root, csr.PublicKey, s.rootKey)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "sign: %v", err)
	}
	leaf := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	fmt.Printf("signed %s for %s\n", id, ttl)
	return &pb.IstioCertificateResponse{CertChain: []string{leaf, s.rootPEM}}, nil
}

func load(certf, keyf string) (*x509.Certificate, string, any, error) {
	pair, err := tls.LoadX509KeyPair(certf, keyf)
	if err != nil {
		return nil, "", nil, err
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, "", nil, err
	}
	raw, err := os.ReadFile(certf)
	return cert, string(raw), pair.PrivateKey, err
}

func main() {
	listen := flag.String("listen", "", "address to serve on")
	certf := flag.String("cert", "", "server certificate (PEM)")
	keyf := flag.String("key", "", "server key (PEM)")
	caCert := flag.String("ca-cert", "", "signing CA certificate (PEM)")
	caKey := flag.String("ca-key", "", "signing CA key (PEM)")
	token := flag.String("token", "", "file holding the one accepted bearer token")
	allow := flag.String("allow", "", "comma-separated SPIFFE IDs that may be issued")
	flag.Parse()
	if *listen == "" || *certf == "" || *keyf == "" || *caCert == "" || *caKey == "" || *token == "" {
		log.Fatal(errors.New("usage: istioca -listen -cert -key -ca-cert -ca-key -token [-allow]"))
	}
	root, rootPEM, rootKey, err := load(*caCert, *caKey)
	if err != nil {
		log.Fatalf("CA: %v", err)
	}
	pair, err := tls.LoadX509KeyPair(*certf, *keyf)
	if err != nil {
		log.Fatalf("server certificate: %v", err)
	}
	s := &server{root: root, rootPEM: rootPEM, rootKey: rootKey, tokenFile: *token, allow: map[string]bool{}}
	for _, id := range strings.Split(*allow, ",") {
		if id != "" {
			s.allow[id] = true
		}
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
	g := grpc.NewServer(grpc.Creds(creds))
	pb.RegisterIstioCertificateServiceServer(g, s)
	fmt.Printf("serving on %s\n", lis.Addr())
	log.Fatal(g.Serve(lis))
}
