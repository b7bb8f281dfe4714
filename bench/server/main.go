// The `nexus serve` load generator (benchmarks/server.md, run by bench/server/run.sh):
// insert_one, find_one by _id and a small find (10 documents by an indexed field) from 1, 8
// and 32 concurrent clients, through the official Go driver against `nexus serve`, through
// its HTTP (Data API) and gRPC front ends (fronts.go; one server serves all three over the
// same data directory), and the same operations in the same run through the embedded C ABI
// (the Go binding, cgo, one connection per client goroutine). Each case runs for a fixed time; ops/s and p50/p99
// latencies are printed as a Markdown table.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	nexus "github.com/nexuslite/nexuslite/bindings/go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const preload = 10000 // documents with _id 0..9999, grp = _id % 1000 (10 per group)

// insertedGrp: the grp of the documents insert_one adds, outside 0..999, so the groups that
// "find 10 by index" reads keep exactly 10 documents however many inserts ran before it.
func insertedGrp(n int) int { return 1000 + n%1000 }

// exactly10 checks the size of a "find 10 by index" answer.
func exactly10(got int) error {
	if got != 10 {
		return fmt.Errorf("find by grp returned %d documents, not 10", got)
	}
	return nil
}

type result struct {
	ops      int
	elapsed  time.Duration
	p50, p99 time.Duration
}

// run calls op from `clients` goroutines for `d`; op gets the client's index and a counter.
func run(clients int, d time.Duration, op func(client, n int) error) (result, error) {
	var wg sync.WaitGroup
	lat := make([][]time.Duration, clients)
	var failed atomic.Value
	start := time.Now()
	deadline := start.Add(d)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				t := time.Now()
				if err := op(c, n); err != nil {
					failed.Store(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t))
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err, ok := failed.Load().(error); ok {
		return result{}, err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) == 0 {
		return result{}, fmt.Errorf("no operation finished")
	}
	return result{ops: len(all), elapsed: elapsed, p50: all[len(all)/2], p99: all[len(all)*99/100]}, nil
}

func us(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Nanoseconds())/1000, 'f', 1, 64)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startServer: one `nexus serve` with the MongoDB protocol, HTTP and gRPC; the three addresses.
func startServer(bin, dir string) (*exec.Cmd, [3]string, error) {
	var addrs [3]string
	for i := range addrs {
		a, err := freeAddr()
		if err != nil {
			return nil, addrs, err
		}
		addrs[i] = a
	}
	cmd := exec.Command(bin, "serve", "--data-dir", dir, "--mongo", addrs[0], "--http", addrs[1], "--grpc", addrs[2])
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, addrs, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, addrs, err
	}
	r := bufio.NewReader(out)
	for range addrs {
		if _, err := r.ReadString('\n'); err != nil {
			return nil, addrs, err
		}
	}
	return cmd, addrs, nil
}

func main() {
	bin := flag.String("nexus", "../../target/release/nexus", "the nexus binary")
	dur := flag.Duration("duration", 2*time.Second, "time per case")
	root := flag.String("root", "../..", "the repository (for proto/nexus/v1/nexus.proto)")
	clientList := flag.String("clients", "1,8,32", "client counts")
	pathList := flag.String("paths", "wire,http,grpc,embedded", "the paths measured (wire, http, grpc, embedded)")
	opList := flag.String("ops", "insert_one,find_one by _id,find 10 by index", "the operations measured")
	withProbes := flag.Bool("probes", true, "first the one-client floor: loopback round trip, bare OP_MSG, driver ping")
	flag.Parse()
	var clientCounts []int
	for _, s := range strings.Split(*clientList, ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			panic(err)
		}
		clientCounts = append(clientCounts, n)
	}
	work, err := os.MkdirTemp("", "nexus-bench-server-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(work)
	ctx := context.Background()

	// The server.
	srv, addrs, err := startServer(*bin, filepath.Join(work, "served"))
	if err != nil {
		panic(err)
	}
	uri := "mongodb://" + addrs[0] + "/"
	defer func() { _ = srv.Process.Signal(syscall.SIGTERM); _ = srv.Wait() }()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetMaxPoolSize(64))
	if err != nil {
		panic(err)
	}
	defer client.Disconnect(ctx)
	sc := client.Database("bench").Collection("docs")
	docs := make([]any, preload)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: i}, {Key: "grp", Value: i % 1000}, {Key: "name", Value: fmt.Sprintf("user-%d", i)}}
	}
	if _, err := sc.InsertMany(ctx, docs); err != nil {
		panic(err)
	}
	if _, err := sc.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "grp", Value: 1}}}); err != nil {
		panic(err)
	}

	// The embedded library, the same data in a file of its own.
	path := filepath.Join(work, "embedded.db")
	embedded := make([]*nexus.DB, 0, 64)
	openEmbedded := func() *nexus.DB {
		db, err := nexus.Open(path)
		if err != nil {
			panic(err)
		}
		embedded = append(embedded, db)
		return db
	}
	first := openEmbedded()
	ec := first.Collection("docs")
	edocs := make([]map[string]any, preload)
	for i := range edocs {
		edocs[i] = map[string]any{"_id": i, "grp": i % 1000, "name": fmt.Sprintf("user-%d", i)}
	}
	if _, err := ec.InsertMany(edocs); err != nil {
		panic(err)
	}
	if _, err := ec.CreateIndex(map[string]any{"grp": 1}, nil); err != nil {
		panic(err)
	}
	maxClients := 0
	for _, n := range clientCounts {
		if n > maxClients {
			maxClients = n
		}
	}
	conns := []*nexus.DB{first}
	for len(conns) < maxClients {
		conns = append(conns, openEmbedded())
	}
	defer func() {
		for _, db := range embedded {
			db.Close()
		}
	}()

	var nextID atomic.Int64
	nextID.Store(1_000_000)
	type side struct {
		name string
		ops  map[string]func(c, n int) error
	}
	serverOps := map[string]func(c, n int) error{
		"insert_one": func(c, n int) error {
			_, err := sc.InsertOne(ctx, bson.D{{Key: "_id", Value: nextID.Add(1)}, {Key: "grp", Value: insertedGrp(n)}, {Key: "name", Value: "new"}})
			return err
		},
		"find_one by _id": func(c, n int) error {
			var out bson.M
			return sc.FindOne(ctx, bson.D{{Key: "_id", Value: (n*7919 + c) % preload}}).Decode(&out)
		},
		"find 10 by index": func(c, n int) error {
			cur, err := sc.Find(ctx, bson.D{{Key: "grp", Value: (n*31 + c) % 1000}})
			if err != nil {
				return err
			}
			var out []bson.M
			if err := cur.All(ctx, &out); err != nil {
				return err
			}
			return exactly10(len(out))
		},
	}
	embeddedOps := map[string]func(c, n int) error{
		"insert_one": func(c, n int) error {
			_, err := conns[c].Collection("docs").Insert(map[string]any{"_id": nextID.Add(1), "grp": insertedGrp(n), "name": "new"})
			return err
		},
		"find_one by _id": func(c, n int) error {
			var out map[string]any
			return conns[c].Collection("docs").FindOne(map[string]any{"_id": (n*7919 + c) % preload}, &out)
		},
		"find 10 by index": func(c, n int) error {
			cur, err := conns[c].Collection("docs").Find(map[string]any{"grp": (n*31 + c) % 1000}, nil)
			if err != nil {
				return err
			}
			var out []map[string]any
			if err := cur.All(&out); err != nil {
				return err
			}
			return exactly10(len(out))
		},
	}
	newID := func() int64 { return nextID.Add(1) }
	grpcSide, closeGrpc, err := grpcOps(addrs[2], *root, newID)
	if err != nil {
		panic(err)
	}
	defer closeGrpc()
	all := map[string]side{
		"wire":     {"nexus serve (Go driver)", serverOps},
		"http":     {"nexus serve HTTP (Data API, net/http)", restOps("http://"+addrs[1], newID)},
		"grpc":     {"nexus serve gRPC (grpc-go)", grpcSide},
		"embedded": {"embedded (C ABI via cgo)", embeddedOps},
	}
	var sides []side
	for _, p := range strings.Split(*pathList, ",") {
		s, ok := all[p]
		if !ok {
			panic("unknown path " + p)
		}
		sides = append(sides, s)
	}
	if *withProbes {
		list, closeProbes, err := probes(addrs[0], client)
		if err != nil {
			panic(err)
		}
		if err := printProbes(list, *dur); err != nil {
			panic(err)
		}
		closeProbes()
		fmt.Println()
	}
	fmt.Println("| operation | clients | path | ops/s | p50 µs | p99 µs |")
	fmt.Println("|---|---:|---|---:|---:|---:|")
	for _, opName := range strings.Split(*opList, ",") {
		for _, clients := range clientCounts {
			for _, s := range sides {
				r, err := run(clients, *dur, s.ops[opName])
				if err != nil {
					panic(fmt.Sprintf("%s %s: %v", s.name, opName, err))
				}
				fmt.Printf("| %s | %d | %s | %.0f | %s | %s |\n", opName, clients, s.name,
					float64(r.ops)/r.elapsed.Seconds(), us(r.p50), us(r.p99))
			}
		}
	}
}
