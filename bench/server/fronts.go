// The HTTP and gRPC front ends of `nexus serve` for the load generator: the same three
// operations as the wire protocol's, through the Atlas Data API actions (net/http, JSON) and
// through nexus.v1.Nexus (grpc-go, messages built at run time from proto/nexus/v1/nexus.proto
// with protocompile + dynamicpb, documents as BSON).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"

	"github.com/bufbuild/protocompile"
	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// restOps: the operations through POST /app/data-api/endpoint/data/v1/action/NAME.
func restOps(base string, nextID func() int64) map[string]func(c, n int) error {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}}
	action := func(name string, body map[string]any, out any) error {
		body["dataSource"] = "bench"
		body["database"] = "bench"
		body["collection"] = "docs"
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r, err := hc.Post(base+"/app/data-api/endpoint/data/v1/action/"+name, "application/json", bytes.NewReader(b))
		if err != nil {
			return err
		}
		defer r.Body.Close()
		data, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		if r.StatusCode != 200 && r.StatusCode != 201 {
			return fmt.Errorf("%s: %d %s", name, r.StatusCode, data)
		}
		return json.Unmarshal(data, out)
	}
	return map[string]func(c, n int) error{
		"insert_one": func(c, n int) error {
			var out map[string]any
			return action("insertOne", map[string]any{"document": map[string]any{"_id": nextID(), "grp": insertedGrp(n), "name": "new"}}, &out)
		},
		"find_one by _id": func(c, n int) error {
			var out struct{ Document map[string]any }
			if err := action("findOne", map[string]any{"filter": map[string]any{"_id": (n*7919 + c) % preload}}, &out); err != nil {
				return err
			}
			if out.Document == nil {
				return errors.New("findOne found nothing")
			}
			return nil
		},
		"find 10 by index": func(c, n int) error {
			var out struct{ Documents []map[string]any }
			if err := action("find", map[string]any{"filter": map[string]any{"grp": (n*31 + c) % 1000}}, &out); err != nil {
				return err
			}
			return exactly10(len(out.Documents))
		},
	}
}

// grpcOps: the operations through nexus.v1.Nexus (one client connection, HTTP/2 multiplexed).
func grpcOps(addr, root string, nextID func() int64) (map[string]func(c, n int) error, func(), error) {
	compiler := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{filepath.Join(root, "proto")}}),
	}
	files, err := compiler.Compile(context.Background(), "nexus/v1/nexus.proto")
	if err != nil {
		return nil, nil, err
	}
	file := files[0]
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	svc := file.Services().ByName("Nexus")
	ns := dynamicpb.NewMessage(file.Messages().ByName("Namespace"))
	ns.Set(ns.Descriptor().Fields().ByName("database"), protoreflect.ValueOfString("bench"))
	ns.Set(ns.Descriptor().Fields().ByName("collection"), protoreflect.ValueOfString("docs"))
	request := func(method string, fields map[string][]byte) (*dynamicpb.Message, *dynamicpb.Message) {
		m := svc.Methods().ByName(protoreflect.Name(method))
		in := dynamicpb.NewMessage(m.Input())
		in.Set(m.Input().Fields().ByName("ns"), protoreflect.ValueOfMessage(ns))
		for k, v := range fields {
			in.Set(m.Input().Fields().ByName(protoreflect.Name(k)), protoreflect.ValueOfBytes(v))
		}
		return in, dynamicpb.NewMessage(m.Output())
	}
	ctx := context.Background()
	ops := map[string]func(c, n int) error{
		"insert_one": func(c, n int) error {
			d, err := bson.Marshal(bson.D{{Key: "_id", Value: nextID()}, {Key: "grp", Value: insertedGrp(n)}, {Key: "name", Value: "new"}})
			if err != nil {
				return err
			}
			in, out := request("InsertOne", map[string][]byte{"document": d})
			return conn.Invoke(ctx, "/nexus.v1.Nexus/InsertOne", in, out)
		},
		"find_one by _id": func(c, n int) error {
			f, err := bson.Marshal(bson.D{{Key: "_id", Value: (n*7919 + c) % preload}})
			if err != nil {
				return err
			}
			in, out := request("FindOne", map[string][]byte{"filter": f})
			if err := conn.Invoke(ctx, "/nexus.v1.Nexus/FindOne", in, out); err != nil {
				return err
			}
			if !out.Has(out.Descriptor().Fields().ByName("document")) {
				return errors.New("FindOne found nothing")
			}
			return nil
		},
		"find 10 by index": func(c, n int) error {
			f, err := bson.Marshal(bson.D{{Key: "grp", Value: (n*31 + c) % 1000}})
			if err != nil {
				return err
			}
			in, _ := request("Find", map[string][]byte{"filter": f})
			s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/nexus.v1.Nexus/Find")
			if err != nil {
				return err
			}
			if err := s.SendMsg(in); err != nil {
				return err
			}
			if err := s.CloseSend(); err != nil {
				return err
			}
			got := 0
			for {
				b := dynamicpb.NewMessage(svc.Methods().ByName("Find").Output())
				err := s.RecvMsg(b)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return err
				}
				docs := b.Get(b.Descriptor().Fields().ByName("documents")).List()
				for i := 0; i < docs.Len(); i++ {
					var m bson.M
					if err := bson.Unmarshal(docs.Get(i).Bytes(), &m); err != nil {
						return err
					}
					got++
				}
			}
			return exactly10(got)
		},
	}
	return ops, func() { conn.Close() }, nil
}
