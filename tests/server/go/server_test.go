// The official Go driver (go.mongodb.org/mongo-driver/v2) against `nexus serve`: CRUD,
// a cursor over 10,000 documents in batches, indexes and duplicate keys, counts,
// aggregation, find-and-modify and bulk writes. NEXUS_BIN names the nexus binary.
package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

type server struct {
	cmd *exec.Cmd
	uri string
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer runs `nexus serve` on a free port over a new temporary directory and waits
// for its start line.
func startServer(t *testing.T, dir string, extra ...string) *server {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := append([]string{"serve", "--data-dir", dir, "--mongo", addr}, extra...)
	cmd := exec.Command(nexusBin(t), args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.Contains(line, addr) {
		_ = cmd.Process.Kill()
		t.Fatalf("start line %q: %v", line, err)
	}
	s := &server{cmd: cmd, uri: "mongodb://" + addr + "/"}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("nexus serve exited with %v", err)
		}
	})
	return s
}

func nexusBin(t *testing.T) string {
	bin := os.Getenv("NEXUS_BIN")
	if bin == "" {
		t.Fatal("NEXUS_BIN is not set")
	}
	return bin
}

func connect(t *testing.T, s *server, opts ...*options.ClientOptions) *mongo.Client {
	t.Helper()
	o := append([]*options.ClientOptions{options.Client().ApplyURI(s.uri).SetServerSelectionTimeout(5 * time.Second)}, opts...)
	c, err := mongo.Connect(o...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDriverAgainstNexusServe(t *testing.T) {
	s := startServer(t, t.TempDir())
	c := connect(t, s)
	ctx := context.Background()
	db := c.Database("gotest")
	must(t, c.Ping(ctx, nil))

	t.Run("crud", func(t *testing.T) {
		coll := db.Collection("people")
		r, err := coll.InsertOne(ctx, bson.D{{Key: "name", Value: "ada"}, {Key: "age", Value: 36}})
		must(t, err)
		if _, ok := r.InsertedID.(bson.ObjectID); !ok {
			t.Fatalf("inserted id %v", r.InsertedID)
		}
		_, err = coll.InsertMany(ctx, []any{bson.M{"name": "alan", "age": 41}, bson.M{"name": "grace", "age": 85}})
		must(t, err)
		var got bson.M
		must(t, coll.FindOne(ctx, bson.M{"name": "grace"}).Decode(&got))
		if got["age"] != int32(85) {
			t.Fatalf("found %v", got)
		}
		u, err := coll.UpdateMany(ctx, bson.M{"age": bson.M{"$gt": 40}}, bson.M{"$inc": bson.M{"age": 1}})
		must(t, err)
		if u.MatchedCount != 2 || u.ModifiedCount != 2 {
			t.Fatalf("update %+v", u)
		}
		up, err := coll.UpdateOne(ctx, bson.M{"name": "new"}, bson.M{"$set": bson.M{"age": 1}}, options.UpdateOne().SetUpsert(true))
		must(t, err)
		if up.UpsertedID == nil {
			t.Fatalf("no upserted id: %+v", up)
		}
		cur, err := coll.Find(ctx, bson.M{}, options.Find().SetSort(bson.D{{Key: "age", Value: -1}}).SetProjection(bson.M{"_id": 0, "name": 1}))
		must(t, err)
		var all []bson.M
		must(t, cur.All(ctx, &all))
		names := []string{}
		for _, d := range all {
			names = append(names, d["name"].(string))
		}
		if strings.Join(names, ",") != "grace,alan,ada,new" {
			t.Fatalf("sorted names %v", names)
		}
		d, err := coll.DeleteMany(ctx, bson.M{"age": bson.M{"$lt": 40}})
		must(t, err)
		if d.DeletedCount != 2 {
			t.Fatalf("deleted %d", d.DeletedCount)
		}
	})

	t.Run("cursor over 10000 documents", func(t *testing.T) {
		coll := db.Collection("big")
		docs := make([]any, 10000)
		for i := range docs {
			docs[i] = bson.M{"i": i}
		}
		_, err := coll.InsertMany(ctx, docs)
		must(t, err)
		cur, err := coll.Find(ctx, bson.M{}, options.Find().SetBatchSize(500).SetSort(bson.M{"i": 1}))
		must(t, err)
		n := 0
		for cur.Next(ctx) {
			var d struct{ I int }
			must(t, cur.Decode(&d))
			if d.I != n {
				t.Fatalf("document %d has i %d", n, d.I)
			}
			n++
		}
		must(t, cur.Err())
		if n != 10000 {
			t.Fatalf("read %d documents", n)
		}
	})

	t.Run("indexes and duplicate keys", func(t *testing.T) {
		coll := db.Collection("users")
		name, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true)})
		must(t, err)
		if name != "email_1" {
			t.Fatalf("index name %q", name)
		}
		_, err = coll.InsertOne(ctx, bson.M{"email": "a@x"})
		must(t, err)
		_, err = coll.InsertOne(ctx, bson.M{"email": "a@x"})
		if !mongo.IsDuplicateKeyError(err) {
			t.Fatalf("want a duplicate key error, got %v", err)
		}
		_, err = coll.InsertMany(ctx, []any{bson.M{"email": "b@x"}, bson.M{"email": "a@x"}, bson.M{"email": "c@x"}}, options.InsertMany().SetOrdered(false))
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || len(bwe.WriteErrors) != 1 || bwe.WriteErrors[0].Code != 11000 || bwe.WriteErrors[0].Index != 1 {
			t.Fatalf("unordered insert: %v", err)
		}
		specs, err := coll.Indexes().ListSpecifications(ctx)
		must(t, err)
		if len(specs) != 2 || specs[1].Name != "email_1" || specs[1].Unique == nil || !*specs[1].Unique {
			t.Fatalf("indexes %+v", specs)
		}
		must(t, coll.Indexes().DropOne(ctx, "email_1"))
	})

	t.Run("counts and aggregation", func(t *testing.T) {
		coll := db.Collection("sales")
		_, err := coll.InsertMany(ctx, []any{
			bson.M{"item": "a", "qty": 5}, bson.M{"item": "b", "qty": 2}, bson.M{"item": "a", "qty": 7},
		})
		must(t, err)
		n, err := coll.CountDocuments(ctx, bson.M{"item": "a"})
		must(t, err)
		if n != 2 {
			t.Fatalf("count %d", n)
		}
		est, err := coll.EstimatedDocumentCount(ctx)
		must(t, err)
		if est != 3 {
			t.Fatalf("estimated count %d", est)
		}
		cur, err := coll.Aggregate(ctx, mongo.Pipeline{
			{{Key: "$group", Value: bson.M{"_id": "$item", "total": bson.M{"$sum": "$qty"}}}},
			{{Key: "$sort", Value: bson.M{"_id": 1}}},
		})
		must(t, err)
		var out []struct {
			ID    string `bson:"_id"`
			Total int32  `bson:"total"`
		}
		must(t, cur.All(ctx, &out))
		if len(out) != 2 || out[0].ID != "a" || out[0].Total != 12 || out[1].Total != 2 {
			t.Fatalf("aggregate %+v", out)
		}
	})

	t.Run("find one and update, bulk write", func(t *testing.T) {
		coll := db.Collection("counters")
		_, err := coll.InsertOne(ctx, bson.M{"_id": "a", "n": 1})
		must(t, err)
		var after bson.M
		must(t, coll.FindOneAndUpdate(ctx, bson.M{"_id": "a"}, bson.M{"$inc": bson.M{"n": 1}},
			options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&after))
		if after["n"] != int32(2) {
			t.Fatalf("after %v", after)
		}
		err = coll.FindOneAndUpdate(ctx, bson.M{"_id": "zz"}, bson.M{"$set": bson.M{"n": 1}}).Err()
		if !errors.Is(err, mongo.ErrNoDocuments) {
			t.Fatalf("want no documents, got %v", err)
		}
		r, err := coll.BulkWrite(ctx, []mongo.WriteModel{
			mongo.NewInsertOneModel().SetDocument(bson.M{"_id": "b", "n": 5}),
			mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": "a"}).SetUpdate(bson.M{"$set": bson.M{"n": 10}}),
			mongo.NewDeleteOneModel().SetFilter(bson.M{"_id": "b"}),
			mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": "c"}).SetUpdate(bson.M{"$set": bson.M{"n": 3}}).SetUpsert(true),
		})
		must(t, err)
		if r.InsertedCount != 1 || r.ModifiedCount != 1 || r.DeletedCount != 1 || r.UpsertedCount != 1 {
			t.Fatalf("bulk write %+v", r)
		}
	})

	t.Run("transactions", func(t *testing.T) {
		coll := db.Collection("accounts")
		_, err := coll.InsertMany(ctx, []any{bson.M{"_id": "a", "bal": 100}, bson.M{"_id": "b", "bal": 0}})
		must(t, err)
		sess, err := c.StartSession()
		must(t, err)
		defer sess.EndSession(ctx)
		_, err = sess.WithTransaction(ctx, func(sc context.Context) (any, error) {
			if _, err := coll.UpdateOne(sc, bson.M{"_id": "a"}, bson.M{"$inc": bson.M{"bal": -30}}); err != nil {
				return nil, err
			}
			return coll.UpdateOne(sc, bson.M{"_id": "b"}, bson.M{"$inc": bson.M{"bal": 30}})
		})
		must(t, err)
		// A transaction whose callback fails is rolled back.
		boom := errors.New("boom")
		_, err = sess.WithTransaction(ctx, func(sc context.Context) (any, error) {
			if _, err := coll.InsertOne(sc, bson.M{"_id": "c"}); err != nil {
				return nil, err
			}
			return nil, boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("want the callback's error, got %v", err)
		}
		var a, b bson.M
		must(t, coll.FindOne(ctx, bson.M{"_id": "a"}).Decode(&a))
		must(t, coll.FindOne(ctx, bson.M{"_id": "b"}).Decode(&b))
		n, err := coll.CountDocuments(ctx, bson.M{})
		must(t, err)
		if a["bal"] != int32(70) || b["bal"] != int32(30) || n != 2 {
			t.Fatalf("after the transactions: a %v, b %v, %d documents", a, b, n)
		}
	})

	t.Run("error codes", func(t *testing.T) {
		err := db.RunCommand(ctx, bson.D{{Key: "noSuchCommand", Value: 1}}).Err()
		var ce mongo.CommandError
		if !errors.As(err, &ce) || ce.Code != 59 || ce.Name != "CommandNotFound" {
			t.Fatalf("unknown command: %v", err)
		}
	})
}

func TestSnappyCompression(t *testing.T) {
	s := startServer(t, t.TempDir())
	c := connect(t, s, options.Client().SetCompressors([]string{"snappy"}))
	ctx := context.Background()
	coll := c.Database("z").Collection("c")
	docs := make([]any, 3000)
	for i := range docs {
		docs[i] = bson.M{"i": i, "text": strings.Repeat("compressible ", 10)}
	}
	_, err := coll.InsertMany(ctx, docs)
	must(t, err)
	cur, err := coll.Find(ctx, bson.M{"i": bson.M{"$gte": 1000}}, options.Find().SetBatchSize(300))
	must(t, err)
	var out []bson.M
	must(t, cur.All(ctx, &out))
	if len(out) != 2000 {
		t.Fatalf("read %d documents", len(out))
	}
}

func TestScramSha256Authentication(t *testing.T) {
	dir := t.TempDir()
	add := exec.Command(nexusBin(t), "user", "add", dir, "ada")
	add.Stdin = strings.NewReader("s3cret\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("nexus user add: %v: %s", err, out)
	}
	s := startServer(t, dir, "--auth")
	ctx := context.Background()
	good := connect(t, s, options.Client().SetAuth(options.Credential{Username: "ada", Password: "s3cret"}))
	_, err := good.Database("app").Collection("c").InsertOne(ctx, bson.M{"_id": 1})
	must(t, err)
	bad := connect(t, s, options.Client().SetAuth(options.Credential{Username: "ada", Password: "wrong"}))
	err = bad.Database("app").Collection("c").FindOne(ctx, bson.M{}).Err()
	if err == nil || !strings.Contains(err.Error(), "Authentication failed") {
		t.Fatalf("wrong password: %v", err)
	}
	anonymous := connect(t, s)
	err = anonymous.Database("app").Collection("c").FindOne(ctx, bson.M{}).Err()
	var ce mongo.CommandError
	if !errors.As(err, &ce) || ce.Code != 13 {
		t.Fatalf("unauthenticated: %v", err)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := dir+"/cert.pem", dir+"/key.pem"
	gen := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
		"-out", cert, "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v: %s", err, out)
	}
	pem, err := os.ReadFile(cert)
	must(t, err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in the PEM file")
	}
	s := startServer(t, dir+"/data", "--tls-cert", cert, "--tls-key", key)
	c := connect(t, s, options.Client().SetTLSConfig(&tls.Config{RootCAs: pool}))
	ctx := context.Background()
	_, err = c.Database("app").Collection("c").InsertOne(ctx, bson.M{"_id": 1})
	must(t, err)
	n, err := c.Database("app").Collection("c").CountDocuments(ctx, bson.M{})
	must(t, err)
	if n != 1 {
		t.Fatalf("count %d", n)
	}
}
