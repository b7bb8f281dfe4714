// The floor under the one-client rows (benchmarks/server.md "Where the time goes"): the
// machine's loopback TCP round trip (a Go echo server in this process), `nexus serve` answered
// over a bare TCP socket with hand-built OP_MSG frames (no driver: what the server itself
// takes per request), and the Go driver's own `ping` (the driver's share of a round trip).
package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// opMsg frames one OP_MSG (flagBits 0, one body section) holding cmd.
func opMsg(id int32, cmd bson.D) ([]byte, error) {
	body, err := bson.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	n := 16 + 4 + 1 + len(body)
	out := make([]byte, 0, n)
	out = binary.LittleEndian.AppendUint32(out, uint32(n))
	out = binary.LittleEndian.AppendUint32(out, uint32(id))
	out = binary.LittleEndian.AppendUint32(out, 0)
	out = binary.LittleEndian.AppendUint32(out, 2013)
	out = binary.LittleEndian.AppendUint32(out, 0)
	out = append(out, 0)
	return append(out, body...), nil
}

// roundTrip writes msg and reads one length-prefixed reply (the MongoDB framing; the echo
// server sends the bytes back, so its "reply" is the message itself).
func roundTrip(c net.Conn, msg, buf []byte) ([]byte, error) {
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(c, buf[:4]); err != nil {
		return nil, err
	}
	n := int(binary.LittleEndian.Uint32(buf[:4]))
	if n < 4 || n > len(buf) {
		return nil, fmt.Errorf("reply length %d", n)
	}
	if _, err := io.ReadFull(c, buf[4:n]); err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// okReply checks that an OP_MSG reply's body says ok: 1 (and, for a find, holds want
// documents in its first batch; want < 0: not a find).
func okReply(reply []byte, want int) error {
	if len(reply) < 21 {
		return fmt.Errorf("short reply")
	}
	doc := bson.Raw(reply[21:])
	if ok, err := doc.LookupErr("ok"); err != nil || ok.AsFloat64() != 1 {
		return fmt.Errorf("reply not ok: %v", doc)
	}
	if want >= 0 {
		batch, err := doc.LookupErr("cursor", "firstBatch")
		if err != nil {
			return err
		}
		vals, err := batch.Array().Values()
		if err != nil {
			return err
		}
		if len(vals) != want {
			return fmt.Errorf("find returned %d documents, not %d", len(vals), want)
		}
	}
	return nil
}

type probe struct {
	name string
	op   func(n int) error
}

// probes: the rows of the second table.
func probes(mongoAddr string, client *mongo.Client) ([]probe, func(), error) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c) }()
		}
	}()
	echoConn, err := net.Dial("tcp", echo.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	raw, err := net.Dial("tcp", mongoAddr)
	if err != nil {
		return nil, nil, err
	}
	closeAll := func() { echoConn.Close(); raw.Close(); echo.Close() }
	buf := make([]byte, 1<<20)
	// 64 bytes with a length prefix, about a find_one request's size.
	ping64 := make([]byte, 64)
	binary.LittleEndian.PutUint32(ping64, 64)
	pingMsg, err := opMsg(1, bson.D{{Key: "ping", Value: 1}, {Key: "$db", Value: "admin"}})
	if err != nil {
		return nil, nil, err
	}
	ctx := context.Background()
	// One "find 10 by index" reply, for the client-side decoding row.
	find10, err := opMsg(1, bson.D{{Key: "find", Value: "docs"}, {Key: "filter", Value: bson.D{{Key: "grp", Value: 7}}}, {Key: "$db", Value: "bench"}})
	if err != nil {
		return nil, nil, err
	}
	r, err := roundTrip(raw, find10, buf)
	if err != nil {
		return nil, nil, err
	}
	reply10 := append([]byte(nil), r...)
	list := []probe{
		{"loopback TCP round trip (Go echo, 64 bytes)", func(n int) error {
			_, err := roundTrip(echoConn, ping64, buf)
			return err
		}},
		{"OP_MSG ping, bare socket (no driver)", func(n int) error {
			r, err := roundTrip(raw, pingMsg, buf)
			if err != nil {
				return err
			}
			return okReply(r, -1)
		}},
		{"OP_MSG find by _id (limit 1, singleBatch), bare socket", func(n int) error {
			m, err := opMsg(int32(n), bson.D{{Key: "find", Value: "docs"}, {Key: "filter", Value: bson.D{{Key: "_id", Value: (n * 7919) % preload}}},
				{Key: "limit", Value: 1}, {Key: "singleBatch", Value: true}, {Key: "$db", Value: "bench"}})
			if err != nil {
				return err
			}
			r, err := roundTrip(raw, m, buf)
			if err != nil {
				return err
			}
			return okReply(r, 1)
		}},
		{"OP_MSG find 10 by index, bare socket", func(n int) error {
			m, err := opMsg(int32(n), bson.D{{Key: "find", Value: "docs"}, {Key: "filter", Value: bson.D{{Key: "grp", Value: (n * 31) % 1000}}},
				{Key: "$db", Value: "bench"}})
			if err != nil {
				return err
			}
			r, err := roundTrip(raw, m, buf)
			if err != nil {
				return err
			}
			return okReply(r, 10)
		}},
		{"OP_MSG insert of 1 document, bare socket", func(n int) error {
			m, err := opMsg(int32(n), bson.D{{Key: "insert", Value: "docs"},
				{Key: "documents", Value: bson.A{bson.D{{Key: "_id", Value: 2_000_000 + n}, {Key: "grp", Value: insertedGrp(n)}, {Key: "name", Value: "new"}}}},
				{Key: "$db", Value: "bench"}})
			if err != nil {
				return err
			}
			r, err := roundTrip(raw, m, buf)
			if err != nil {
				return err
			}
			return okReply(r, -1)
		}},
		{"Go: a 10-document find reply decoded into []bson.M (no I/O)", func(n int) error {
			var out struct {
				Cursor struct{ FirstBatch []bson.M } `bson:"cursor"`
			}
			if err := bson.Unmarshal(reply10[21:], &out); err != nil {
				return err
			}
			return exactly10(len(out.Cursor.FirstBatch))
		}},
		{"Go driver RunCommand ping", func(n int) error {
			return client.Database("admin").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err()
		}},
		{"Go driver RunCommand find 10 by index (reply kept raw)", func(n int) error {
			raw, err := client.Database("bench").RunCommand(ctx, bson.D{{Key: "find", Value: "docs"},
				{Key: "filter", Value: bson.D{{Key: "grp", Value: (n * 31) % 1000}}}}).Raw()
			if err != nil {
				return err
			}
			vals, err := raw.Lookup("cursor", "firstBatch").Array().Values()
			if err != nil {
				return err
			}
			return exactly10(len(vals))
		}},
		{"Go driver Find 10 by index + cursor.All into []bson.M (the table's operation)", func(n int) error {
			cur, err := client.Database("bench").Collection("docs").Find(ctx, bson.D{{Key: "grp", Value: (n * 31) % 1000}})
			if err != nil {
				return err
			}
			var out []bson.M
			if err := cur.All(ctx, &out); err != nil {
				return err
			}
			return exactly10(len(out))
		}},
	}
	return list, closeAll, nil
}

// printProbes runs each probe from one goroutine for d and prints a table.
func printProbes(list []probe, d time.Duration) error {
	fmt.Println("| one client | ops/s | p50 µs | p99 µs |")
	fmt.Println("|---|---:|---:|---:|")
	for _, p := range list {
		r, err := run(1, d, func(c, n int) error { return p.op(n) })
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		fmt.Printf("| %s | %.0f | %s | %s |\n", p.name, float64(r.ops)/r.elapsed.Seconds(), us(r.p50), us(r.p99))
	}
	return nil
}
