// SPDX-License-Identifier: Apache-2.0
//
// grpcecho: a gRPC server and client on google.golang.org/grpc, for the
// waypoint's HTTP/2 and gRPC tests (tests/netns/test_waypoint.sh). Plain
// HTTP/2 (prior knowledge): the mesh's tunnels carry it over mTLS. The
// service is described by hand (warren.test.Echo) with
// google.protobuf.StringValue messages, so nothing is generated.
//
//	grpcecho server -listen :9090 [-http :8090] -name srv -log FILE
//	grpcecho client -addr IP:PORT -call unary|stream [-md V] VALUE
//	grpcecho h2get [-parallel] [-H NAME:VALUE] [-post BYTES -T NAME:VALUE] [-timeout D] URL...
//
// Server, per call (one line in -log: "METHOD VALUE"):
//   - Unary: "VALUE from NAME"; VALUE "notfound..." answers NOT_FOUND with
//     the message "no such thing: VALUE"; "flaky..." answers UNAVAILABLE
//     the first time that VALUE is seen, then OK; header x-echo-md gets the
//     request's metadata key x-md back as a response header.
//   - Stream: N (-n, sent as "N:VALUE") messages "VALUE #i from NAME", then
//     the trailer x-trailer: "done-VALUE" and status OK.
//
// With -http, also plain HTTP/2 (h2c, prior knowledge) on that address, one
// line per request in -log ("METHOD PATH BODYLEN"): "hello PATH BODYLEN
// from NAME" with x-secret: s; /code/N answers N, /big/N answers N bytes,
// /slow waits 3 s (logs "CANCELLED PATH" if the stream is reset first), /hdr adds "env=... added=... drop=..." (those request
// headers) to the answer, /trailer sends the trailer x-app-trailer: yes,
// /rtrailer answers the request trailer x-req-trailer, /reset resets the
// stream before answering, /reset-mid after the first line, /upgrade
// answers the request's protocol and Upgrade field, /conn the connection's
// peer address.
//
// h2get: plain HTTP/2 (prior knowledge) requests on one connection, in
// order or all at once (-parallel); GETs, or POSTs of -post bytes with the
// request trailer -T; one line per URL, in the order given:
// "CODE BODY" (the body's first line), or "ERR <error>", then
// "TRAILER name=value" for each response trailer; last "CONNS n" (how many
// connections were dialled).
//
// Client: prints "OK <reply>" (one line per message for a stream), then
// "TRAILER x-trailer=<value>" when present, or "ERR <Code> <message>";
// exits 0 either way (the caller checks the text), 2 on a usage error.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type echoServer struct {
	name string
	mu   sync.Mutex
	seen map[string]int
	logf *os.File
}

func (s *echoServer) note(method, v string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[v]++
	fmt.Fprintf(s.logf, "%s %s\n", method, v)
	return s.seen[v]
}

func unaryHandler(srv interface{}, ctx context.Context, dec func(interface{}) error, _ grpc.UnaryServerInterceptor) (interface{}, error) {
	s := srv.(*echoServer)
	in := new(wrapperspb.StringValue)
	if err := dec(in); err != nil {
		return nil, err
	}
	v := in.GetValue()
	n := s.note("Unary", v)
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("x-md")) > 0 {
		grpc.SetHeader(ctx, metadata.Pairs("x-echo-md", md.Get("x-md")[0]))
	}
	switch {
	case strings.HasPrefix(v, "notfound"):
		return nil, status.Errorf(codes.NotFound, "no such thing: %s", v)
	case strings.HasPrefix(v, "flaky") && n == 1:
		return nil, status.Errorf(codes.Unavailable, "try again")
	}
	return wrapperspb.String(v + " from " + s.name), nil
}

func streamHandler(srv interface{}, ss grpc.ServerStream) error {
	s := srv.(*echoServer)
	in := new(wrapperspb.StringValue)
	if err := ss.RecvMsg(in); err != nil {
		return err
	}
	s.note("Stream", in.GetValue())
	count, v := 3, in.GetValue()
	if i := strings.IndexByte(v, ':'); i > 0 {
		if n, err := strconv.Atoi(v[:i]); err == nil {
			count, v = n, v[i+1:]
		}
	}
	for i := 1; i <= count; i++ {
		if err := ss.SendMsg(wrapperspb.String(fmt.Sprintf("%s #%d from %s", v, i, s.name))); err != nil {
			return err
		}
	}
	ss.SetTrailer(metadata.Pairs("x-trailer", "done-"+v))
	return nil
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "warren.test.Echo",
	HandlerType: (*interface{})(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Unary", Handler: unaryHandler}},
	Streams:     []grpc.StreamDesc{{StreamName: "Stream", Handler: streamHandler, ServerStreams: true}},
}

func httpHandler(name string, s *echoServer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		fmt.Fprintf(s.logf, "%s %s %d %s\n", r.Method, r.URL.Path, len(body), r.Proto)
		s.mu.Unlock()
		p := r.URL.Path
		w.Header().Set("X-Secret", "s")
		code := http.StatusOK
		switch {
		case strings.HasPrefix(p, "/slow"):
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done(): // the stream was reset
				s.mu.Lock()
				fmt.Fprintf(s.logf, "CANCELLED %s\n", p)
				s.mu.Unlock()
				return
			}
		case strings.HasPrefix(p, "/code/") && len(p) >= 9:
			code, _ = strconv.Atoi(p[6:9])
		case strings.HasPrefix(p, "/big/"):
			n, _ := strconv.Atoi(p[5:])
			w.WriteHeader(code)
			w.Write([]byte(strings.Repeat("0123456789abcdef", n/16+1)[:n]))
			return
		case strings.HasPrefix(p, "/reset-mid"):
			w.WriteHeader(code)
			fmt.Fprintf(w, "partial\n")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // RST_STREAM after the response began
		case strings.HasPrefix(p, "/reset"):
			panic(http.ErrAbortHandler) // RST_STREAM before any response
		case strings.HasPrefix(p, "/rtrailer"):
			fmt.Fprintf(w, "hello %s %d from %s trailer=%s\n", p, len(body), name, r.Trailer.Get("X-Req-Trailer"))
			return
		case strings.HasPrefix(p, "/conn"):
			fmt.Fprintf(w, "conn %s\n", r.RemoteAddr) // which connection carried it
			return
		case strings.HasPrefix(p, "/upgrade"):
			fmt.Fprintf(w, "hello %s %s upgrade=%q\n", p, r.Proto, r.Header.Get("Upgrade"))
			return
		case strings.HasPrefix(p, "/trailer"):
			w.Header().Set("Trailer", "X-App-Trailer")
			w.WriteHeader(code)
			fmt.Fprintf(w, "hello %s %d from %s\n", p, len(body), name)
			w.Header().Set("X-App-Trailer", "yes")
			return
		}
		extra := ""
		if strings.HasPrefix(p, "/hdr") {
			get := func(h string) string {
				if v, ok := r.Header[http.CanonicalHeaderKey(h)]; ok {
					return strings.Join(v, ",")
				}
				return "None"
			}
			extra = fmt.Sprintf(" env=%s added=%s drop=%s", get("x-env"), get("x-added"), get("x-drop"))
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "hello %s %d from %s%s\n", p, len(body), name, extra)
	})
}

func server(args []string) {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	listen := fs.String("listen", ":9090", "address")
	name := fs.String("name", "srv", "named in replies")
	logPath := fs.String("log", "/dev/null", "one line per call")
	httpAddr := fs.String("http", "", "also HTTP/2 (h2c) on this address")
	fs.Parse(args)
	f, err := os.OpenFile(*logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	es := &echoServer{name: *name, seen: map[string]int{}, logf: f}
	if *httpAddr != "" {
		hs := &http.Server{Addr: *httpAddr, Handler: h2c.NewHandler(httpHandler(*name, es), &http2.Server{})}
		go func() { log.Fatal(hs.ListenAndServe()) }()
	}
	gs := grpc.NewServer()
	gs.RegisterService(&echoDesc, es)
	log.Fatal(gs.Serve(ln))
}

func client(args []string) {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	addr := fs.String("addr", "", "IP:PORT")
	call := fs.String("call", "unary", "unary or stream")
	md := fs.String("md", "", "metadata x-md to send")
	fs.Parse(args)
	if *addr == "" || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: grpcecho client -addr IP:PORT -call unary|stream VALUE")
		os.Exit(2)
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if *md != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-md", *md)
	}
	var header, trailer metadata.MD
	report := func(err error) {
		if err != nil {
			st := status.Convert(err)
			fmt.Printf("ERR %s %s\n", st.Code(), st.Message())
		}
		for _, v := range header.Get("x-echo-md") {
			fmt.Printf("HEADER x-echo-md=%s\n", v)
		}
		for _, v := range trailer.Get("x-trailer") {
			fmt.Printf("TRAILER x-trailer=%s\n", v)
		}
	}
	in := wrapperspb.String(fs.Arg(0))
	if *call == "unary" {
		out := new(wrapperspb.StringValue)
		err := conn.Invoke(ctx, "/warren.test.Echo/Unary", in, out, grpc.Header(&header), grpc.Trailer(&trailer))
		if err == nil {
			fmt.Printf("OK %s\n", out.GetValue())
		}
		report(err)
		return
	}
	st, err := conn.NewStream(ctx, &echoDesc.Streams[0], "/warren.test.Echo/Stream")
	if err == nil {
		err = st.SendMsg(in)
	}
	if err == nil {
		err = st.CloseSend()
	}
	for err == nil {
		out := new(wrapperspb.StringValue)
		if err = st.RecvMsg(out); err == nil {
			fmt.Printf("OK %s\n", out.GetValue())
		}
	}
	if err.Error() == "EOF" {
		err = nil
	}
	header, _ = st.Header()
	trailer = st.Trailer()
	report(err)
}

func h2get(args []string) {
	fs := flag.NewFlagSet("h2get", flag.ExitOnError)
	parallel := fs.Bool("parallel", false, "all requests at once")
	hdr := fs.String("H", "", "NAME:VALUE to send")
	post := fs.Int("post", -1, "POST this many bytes")
	rtr := fs.String("T", "", "NAME:VALUE request trailer (with -post)")
	timeout := fs.Duration("timeout", 10*time.Second, "per request")
	fs.Parse(args)
	var mu sync.Mutex
	conns := 0
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		mu.Lock()
		conns++
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	cl := &http.Client{Transport: tr, Timeout: *timeout}
	out := make([]string, fs.NArg())
	get := func(i int, u string) {
		req, _ := http.NewRequest("GET", u, nil)
		if *post >= 0 {
			req, _ = http.NewRequest("POST", u, io.NopCloser(strings.NewReader(strings.Repeat("p", *post))))
			if k, v, ok := strings.Cut(*rtr, ":"); ok {
				req.Trailer = http.Header{http.CanonicalHeaderKey(k): {v}}
			}
		}
		if k, v, ok := strings.Cut(*hdr, ":"); ok {
			req.Header.Set(k, v)
		}
		resp, err := cl.Do(req)
		if err != nil {
			out[i] = "ERR " + err.Error()
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		line := strings.SplitN(string(body), "\n", 2)[0]
		out[i] = fmt.Sprintf("%d %s", resp.StatusCode, line)
		if err != nil {
			out[i] += " ERR " + err.Error()
		}
		for k, v := range resp.Trailer {
			out[i] += fmt.Sprintf("\nTRAILER %s=%s", strings.ToLower(k), strings.Join(v, ","))
		}
	}
	if *parallel && fs.NArg() > 1 {
		get(0, fs.Arg(0)) // the connection first, then the rest at once on it
		var wg sync.WaitGroup
		for i := 1; i < fs.NArg(); i++ {
			wg.Add(1)
			go func(i int) { defer wg.Done(); get(i, fs.Arg(i)) }(i)
		}
		wg.Wait()
	} else {
		for i := 0; i < fs.NArg(); i++ {
			get(i, fs.Arg(i))
		}
	}
	for _, l := range out {
		fmt.Println(l)
	}
	fmt.Printf("CONNS %d\n", conns)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: grpcecho server|client ...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "server":
		server(os.Args[2:])
	case "client":
		client(os.Args[2:])
	case "h2get":
		h2get(os.Args[2:])
	default:
		os.Exit(2)
	}
}
