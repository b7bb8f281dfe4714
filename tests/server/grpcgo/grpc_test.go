// The gRPC front end of `nexus serve --grpc` (NEXUS_BIN) from Go: grpc-go with messages built
// at run time from the committed proto/nexus/v1/nexus.proto (protocompile parses it, dynamicpb
// makes the messages), so no generated code is kept in the repository. Documents are BSON
// (the MongoDB Go driver's bson package).
package grpcgo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bufbuild/protocompile"
	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// client: a connection and the descriptors of nexus.proto.
type client struct {
	conn *grpc.ClientConn
	file protoreflect.FileDescriptor
}

// msg builds a message of the proto's `name` from field values: string, []byte, uint64,
// uint32, bool, [][]byte (repeated bytes) or *dynamicpb.Message.
func (c *client) msg(t *testing.T, name string, fields map[string]any) *dynamicpb.Message {
	t.Helper()
	d := c.file.Messages().ByName(protoreflect.Name(name))
	if d == nil {
		t.Fatalf("no message %s in nexus.proto", name)
	}
	m := dynamicpb.NewMessage(d)
	for k, v := range fields {
		f := d.Fields().ByName(protoreflect.Name(k))
		if f == nil {
			t.Fatalf("no field %s.%s", name, k)
		}
		switch v := v.(type) {
		case string:
			m.Set(f, protoreflect.ValueOfString(v))
		case []byte:
			m.Set(f, protoreflect.ValueOfBytes(v))
		case uint64:
			m.Set(f, protoreflect.ValueOfUint64(v))
		case uint32:
			m.Set(f, protoreflect.ValueOfUint32(v))
		case bool:
			m.Set(f, protoreflect.ValueOfBool(v))
		case *dynamicpb.Message:
			m.Set(f, protoreflect.ValueOfMessage(v))
		case [][]byte:
			l := m.Mutable(f).List()
			for _, b := range v {
				l.Append(protoreflect.ValueOfBytes(b))
			}
		default:
			t.Fatalf("field %s: unsupported %T", k, v)
		}
	}
	return m
}

// method: the input and output descriptors of the method `name` of nexus.v1.Nexus.
func (c *client) method(t *testing.T, name string) protoreflect.MethodDescriptor {
	t.Helper()
	m := c.file.Services().ByName("Nexus").Methods().ByName(protoreflect.Name(name))
	if m == nil {
		t.Fatalf("no method %s", name)
	}
	return m
}

func (c *client) call(ctx context.Context, t *testing.T, name string, req *dynamicpb.Message) (*dynamicpb.Message, error) {
	t.Helper()
	out := dynamicpb.NewMessage(c.method(t, name).Output())
	err := c.conn.Invoke(ctx, "/nexus.v1.Nexus/"+name, req, out)
	return out, err
}

func (c *client) must(ctx context.Context, t *testing.T, name string, req *dynamicpb.Message) *dynamicpb.Message {
	t.Helper()
	out, err := c.call(ctx, t, name, req)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

// stream calls a server-streaming method; the documents of every batch, and the batch sizes.
func (c *client) stream(ctx context.Context, t *testing.T, name string, req *dynamicpb.Message) ([]bson.M, []int, error) {
	t.Helper()
	s, err := c.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/nexus.v1.Nexus/"+name)
	if err != nil {
		return nil, nil, err
	}
	if err := s.SendMsg(req); err != nil {
		return nil, nil, err
	}
	if err := s.CloseSend(); err != nil {
		return nil, nil, err
	}
	var docs []bson.M
	var sizes []int
	for {
		b := dynamicpb.NewMessage(c.method(t, name).Output())
		err := s.RecvMsg(b)
		if errors.Is(err, io.EOF) {
			return docs, sizes, nil
		}
		if err != nil {
			return docs, sizes, err
		}
		l := b.Get(b.Descriptor().Fields().ByName("documents")).List()
		sizes = append(sizes, l.Len())
		for i := 0; i < l.Len(); i++ {
			docs = append(docs, decode(t, l.Get(i).Bytes()))
		}
	}
}

func encode(t *testing.T, d any) []byte {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decode(t *testing.T, b []byte) bson.M {
	t.Helper()
	var m bson.M
	if err := bson.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func field(m *dynamicpb.Message, name string) protoreflect.Value {
	return m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(name)))
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs `nexus serve --grpc` on a free port of the data directory `dir` (a temporary
// one when empty).
func start(t *testing.T, dir string, extra ...string) *client {
	t.Helper()
	bin := os.Getenv("NEXUS_BIN")
	if bin == "" {
		t.Fatal("NEXUS_BIN is not set (run tests/server/run_grpc_go_tests.sh)")
	}
	if dir == "" {
		dir = t.TempDir()
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, append([]string{"serve", "--data-dir", dir, "--grpc", addr}, extra...)...)
	creds := insecure.NewCredentials()
	for i, a := range extra {
		if a == "--tls-cert" {
			tc, err := credentials.NewClientTLSFromFile(extra[i+1], "")
			if err != nil {
				t.Fatal(err)
			}
			creds = tc
		}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.Contains(line, "gRPC on "+addr) {
		t.Fatalf("no banner: %q %v", line, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("nexus serve exited with %v", err)
		}
	})
	compiler := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			ImportPaths: []string{filepath.Join("..", "..", "..", "proto")},
		}),
	}
	files, err := compiler.Compile(context.Background(), "nexus/v1/nexus.proto")
	if err != nil {
		t.Fatalf("proto/nexus/v1/nexus.proto: %v", err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{conn: conn, file: files[0]}
}

func TestCrudStreamingTransactions(t *testing.T) {
	c := start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := func(coll string) *dynamicpb.Message {
		return c.msg(t, "Namespace", map[string]any{"database": "shop", "collection": coll})
	}

	var docs [][]byte
	for i := 0; i < 1500; i++ {
		docs = append(docs, encode(t, bson.D{{Key: "_id", Value: int32(i)}, {Key: "even", Value: i%2 == 0}}))
	}
	r := c.must(ctx, t, "InsertMany", c.msg(t, "InsertManyRequest", map[string]any{"ns": ns("orders"), "documents": docs}))
	if ids := decode(t, field(r, "inserted_ids").Bytes())["ids"].(bson.A); len(ids) != 1500 {
		t.Fatalf("inserted %d ids", len(ids))
	}
	found, sizes, err := c.stream(ctx, t, "Find", c.msg(t, "FindRequest", map[string]any{
		"ns": ns("orders"), "filter": encode(t, bson.D{{Key: "even", Value: true}}),
		"sort": encode(t, bson.D{{Key: "_id", Value: -1}}), "batch_size": uint32(300),
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 750 || found[0]["_id"] != int32(1498) || fmt.Sprint(sizes) != "[300 300 150]" {
		t.Fatalf("find: %d documents, first %v, batches %v", len(found), found[0], sizes)
	}
	agg, _, err := c.stream(ctx, t, "Aggregate", c.msg(t, "AggregateRequest", map[string]any{
		"ns":       ns("orders"),
		"pipeline": [][]byte{encode(t, bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$even"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}}), encode(t, bson.D{{Key: "$sort", Value: bson.D{{Key: "_id", Value: 1}}}})},
	}))
	if err != nil || len(agg) != 2 || agg[0]["n"] != int32(750) {
		t.Fatalf("aggregate: %v %v", agg, err)
	}
	u := c.must(ctx, t, "UpdateMany", c.msg(t, "UpdateRequest", map[string]any{
		"ns": ns("orders"), "filter": encode(t, bson.D{{Key: "even", Value: false}}),
		"update": encode(t, bson.D{{Key: "$set", Value: bson.D{{Key: "odd", Value: true}}}}),
	}))
	if field(u, "matched_count").Uint() != 750 || field(u, "modified_count").Uint() != 750 {
		t.Fatalf("updateMany: %v", u)
	}
	d := c.must(ctx, t, "DeleteMany", c.msg(t, "DeleteRequest", map[string]any{"ns": ns("orders"), "filter": encode(t, bson.D{{Key: "odd", Value: true}})}))
	if field(d, "deleted_count").Uint() != 750 {
		t.Fatalf("deleteMany: %v", d)
	}
	// A duplicate key is ALREADY_EXISTS.
	_, err = c.call(ctx, t, "InsertOne", c.msg(t, "InsertOneRequest", map[string]any{"ns": ns("orders"), "document": encode(t, bson.D{{Key: "_id", Value: int32(0)}})}))
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("duplicate insert: %v", err)
	}
	// A transaction: invisible outside until committed.
	b := c.must(ctx, t, "BeginTransaction", c.msg(t, "BeginTransactionRequest", map[string]any{"database": "shop"}))
	sid := field(b, "session_id").String()
	c.must(ctx, t, "InsertOne", c.msg(t, "InsertOneRequest", map[string]any{"ns": ns("txn"), "document": encode(t, bson.D{{Key: "v", Value: 1}}), "session_id": sid}))
	count := func() uint64 {
		return field(c.must(ctx, t, "Count", c.msg(t, "CountRequest", map[string]any{"ns": ns("txn")})), "count").Uint()
	}
	if n := count(); n != 0 {
		t.Fatalf("uncommitted insert seen outside: %d", n)
	}
	c.must(ctx, t, "CommitTransaction", c.msg(t, "TransactionRequest", map[string]any{"session_id": sid}))
	if n := count(); n != 1 {
		t.Fatalf("after commit: %d", n)
	}
	_, err = c.call(ctx, t, "CommitTransaction", c.msg(t, "TransactionRequest", map[string]any{"session_id": sid}))
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("second commit: %v", err)
	}
	// Bad BSON is INVALID_ARGUMENT.
	_, err = c.call(ctx, t, "Count", c.msg(t, "CountRequest", map[string]any{"ns": ns("txn"), "filter": []byte{1, 2, 3}}))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad BSON: %v", err)
	}
}

func TestHealthReflectionAndKeys(t *testing.T) {
	dir := t.TempDir()
	bin := os.Getenv("NEXUS_BIN")
	out, err := exec.Command(bin, "apikey", "add", dir, "reader", "--read-only").Output()
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(out))
	c := start(t, dir, "--auth")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	h, err := healthpb.NewHealthClient(c.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "nexus.v1.Nexus"})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
	rs, err := reflectionpb.NewServerReflectionClient(c.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := rs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	if !strings.Contains(strings.Join(names, ","), "nexus.v1.Nexus") {
		t.Fatalf("reflection lists %v", names)
	}
	ns := c.msg(t, "Namespace", map[string]any{"database": "shop", "collection": "k"})
	count := c.msg(t, "CountRequest", map[string]any{"ns": ns})
	if _, err := c.call(ctx, t, "Count", count); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no key: %v", err)
	}
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	if _, err := c.call(authed, t, "Count", count); err != nil {
		t.Fatalf("read with a read-only key: %v", err)
	}
	insert := c.msg(t, "InsertOneRequest", map[string]any{"ns": ns, "document": encode(t, bson.D{{Key: "a", Value: 1}})})
	if _, err := c.call(authed, t, "InsertOne", insert); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("write with a read-only key: %v", err)
	}
}

// TLS: grpc-go requires the server to select ALPN "h2".
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
		"-out", cert, "-days", "1", "-subj", "/CN=localhost",
		"-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v %s", err, out)
	}
	c := start(t, filepath.Join(dir, "data"), "--tls-cert", cert, "--tls-key", key)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := c.msg(t, "Namespace", map[string]any{"database": "shop", "collection": "tls"})
	c.must(ctx, t, "InsertOne", c.msg(t, "InsertOneRequest", map[string]any{"ns": ns, "document": encode(t, bson.D{{Key: "a", Value: 1}})}))
	if n := field(c.must(ctx, t, "Count", c.msg(t, "CountRequest", map[string]any{"ns": ns})), "count").Uint(); n != 1 {
		t.Fatalf("count over TLS: %d", n)
	}
}
