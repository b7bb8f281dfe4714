// Package nexus is the Go binding of NexusLite, an embedded document
// database: one database file plus a side log, no server, MongoDB's data
// model and query language.
//
// The package is a thin cgo layer over the library's C ABI (include/nexus.h).
// By default it links the static library target/release/libnexus.a of this
// repository, so `cargo build --release` must have run first; build with
// `-tags nexus_dynamic` to link target/release/libnexus.so instead.
//
// # Usage
//
//	db, err := nexus.Open("app.db")
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer db.Close()
//
//	people := db.Collection("people")
//	id, err := people.Insert(Person{Name: "ada", Age: 36})
//
//	cur, err := people.Find(`{"age": {"$gte": 30}}`,
//		&nexus.FindOptions{Sort: `{"age": -1}`, Limit: 10})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer cur.Close()
//	for cur.Next() {
//		var p Person
//		if err := cur.Decode(&p); err != nil {
//			log.Fatal(err)
//		}
//		fmt.Println(p.Name, p.Age)
//	}
//	if err := cur.Err(); err != nil {
//		log.Fatal(err)
//	}
//
// # Documents, filters and updates
//
// Every argument that is a document, filter, update, sort, projection or
// option object may be JSON text (string, []byte, json.RawMessage) or any
// value encoding/json can marshal: structs, M (map[string]any) or D (an
// ordered object). A nil filter matches every document. Documents come back
// as relaxed MongoDB Extended JSON with "_id" first and decode into structs
// or maps with encoding/json; a document inserted without "_id" is given a
// UUID v4 string.
//
// # Errors
//
// Failures are *Error values carrying the library's status Code and its
// Message. Compare with errors.Is against the sentinels (ErrNotFound,
// ErrDuplicateKey, ErrParse, ErrUnsupported, ...), or use errors.As to read
// the code. Every call made after DB.Close returns ErrClosed.
//
// # Concurrency
//
// A *DB may be used by any number of goroutines; the library serializes the
// calls of one connection. Open several DBs on the same path for parallel
// work: the connections of one process share one engine and its caches.
// Transactions belong to the connection (see DB.Tx).
package nexus
