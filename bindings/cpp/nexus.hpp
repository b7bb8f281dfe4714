// nexus.hpp: header-only C++17 wrapper for the NexusLite C ABI (include/nexus.h).
//
// Build: compile with -std=c++17 (or later), add the include flags of include/nexus.h and
// of this directory, and link libnexus (`pkg-config --cflags --libs nexus`; for the static
// library add `--static`, which also brings -lpthread -ldl -lm).
//
//     #include "nexus.hpp"
//     auto db = nexus::Database::open("app.db");
//     std::string id = db.insert("people", R"({"name":"ada","age":36})");
//     for (std::string_view doc : db.find("people", R"({"age":{"$gt":30}})"))
//         std::cout << doc << '\n';
//
// The contract of this wrapper
// ----------------------------
// * Errors. Every failing call throws nexus::Error, whose code() is the NEXUS_* status of
//   the C call and whose message() is nexus_errmsg() read on the same thread immediately
//   after the failing call (the message is thread-local in the library and overwritten by
//   the next call, so it is captured before anything else runs). Codes this header does
//   not know are errors too. The only "expected" non-OK codes that do NOT throw are:
//   NEXUS_NOT_FOUND from get / get_meta / find_one / find_one_and_* (std::nullopt), and
//   NEXUS_ROW / NEXUS_DONE from cursor steps. Misuse detected by the wrapper itself (a
//   closed or moved-from handle, a string argument containing a NUL byte, a negative TTL)
//   throws nexus::Error with NEXUS_INVALID_ARGUMENT without calling the library.
//   Destructors never throw: they close / roll back and ignore the status.
// * Strings in. Arguments are std::string_view. The C ABI wants NUL-terminated UTF-8, so
//   each argument is copied into a std::string before the call (cheap next to the JSON
//   parsing the library does). For optional arguments (filters, options) an empty view
//   means "not given" and is passed as NULL: an empty filter matches every document, empty
//   options mean the defaults. Invalid UTF-8 is rejected by the library with
//   NEXUS_INVALID_ARGUMENT.
// * Strings out. Library-owned results (char *) are copied into std::string and released
//   with nexus_free() right away (through a unique_ptr with a nexus_free deleter), also when
//   an exception is thrown. Documents are relaxed MongoDB Extended JSON text with `_id`
//   first. The one borrowed result is the cursor row: the std::string_view yielded by a
//   Cursor points into the cursor and is valid only until the cursor advances or closes;
//   copy it (std::string{doc}) to keep it.
// * Ownership. Database and Cursor own their C handle; both are move-only, a moved-from
//   object is empty (operator bool is false), may be assigned to, and is safe to destroy.
//   ~Database() calls nexus_close, ~Cursor() nexus_cursor_close. A Cursor may outlive its
//   Database: the library then fails its next step with NEXUS_ERROR (thrown), and the
//   Cursor still closes cleanly. A Transaction refers to its Database, which must stay
//   alive and must not be moved while the Transaction is active.
// * Threads. A Database may be used from several threads at once: the C connection
//   serializes its calls. Only close(), release(), assignment and destruction need
//   exclusive access. A transaction belongs to the connection, not to a thread: while one
//   thread has begun a transaction on a Database, calls from other threads on the same
//   Database run inside it. For parallel independent work open one Database per thread on
//   the same path (connections of one process share the engine and caches). A Cursor (and
//   its iterators) must be used by one thread at a time.
#ifndef NEXUS_HPP_INCLUDED
#define NEXUS_HPP_INCLUDED

#include <nexus.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// The values of the status codes and flags are fixed by the ABI contract (docs/API.md).
static_assert(NEXUS_OK == 0 && NEXUS_ERROR == 1 && NEXUS_NOT_FOUND == 2 &&
                  NEXUS_INVALID_ARGUMENT == 3 && NEXUS_PARSE == 4 &&
                  NEXUS_DUPLICATE_KEY == 5 && NEXUS_NO_COLLECTION == 6 && NEXUS_IO == 7 &&
                  NEXUS_CORRUPT == 8 && NEXUS_BUSY == 9 && NEXUS_READONLY == 10 &&
                  NEXUS_TXN == 11 && NEXUS_CRYPTO == 12 && NEXUS_UNSUPPORTED == 13 &&
                  NEXUS_INTERNAL == 99 && NEXUS_ROW == 100 && NEXUS_DONE == 101,
              "nexus.h status codes differ from the C ABI contract");
static_assert(NEXUS_MULTI == 1 && NEXUS_UPSERT == 2,
              "nexus.h flags differ from the C ABI contract");

namespace nexus {

// ---------------------------------------------------------------------------------------
// Version
// ---------------------------------------------------------------------------------------

/// Version of the linked library, e.g. "0.1.0" (static string).
inline std::string_view version() noexcept {
    const char* v = nexus_version();
    return v ? std::string_view(v) : std::string_view();
}

/// Version of the linked library as 1000000*major + 1000*minor + patch.
inline int version_number() noexcept { return nexus_version_number(); }

/// Version of the header this program was compiled against, same encoding.
inline constexpr int header_version_number =
    1000000 * NEXUS_VERSION_MAJOR + 1000 * NEXUS_VERSION_MINOR + NEXUS_VERSION_PATCH;

/// Static name of a status code (nexus_errstr), never null.
inline const char* errstr(int code) noexcept {
    const char* s = nexus_errstr(code);
    return s ? s : "NEXUS_?";
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// A failed NexusLite call. code() is the NEXUS_* status, message() the text of
/// nexus_errmsg() captured right after the failing call. what() is message(), or the
/// code's name when the library gave no message.
class Error : public std::runtime_error {
public:
    Error(int code, std::string message)
        : std::runtime_error(message.empty() ? std::string(errstr(code)) : message),
          code_(code),
          message_(std::move(message)) {}

    /// The NEXUS_* status code (compare with NEXUS_PARSE, NEXUS_DUPLICATE_KEY, ...).
    int code() const noexcept { return code_; }
    /// The library's message for this failure (may be empty if the library gave none).
    const std::string& message() const noexcept { return message_; }
    /// Static name of code(), from nexus_errstr.
    const char* name() const noexcept { return errstr(code_); }

private:
    int code_;
    std::string message_;
};

/// A batch write (Database::insert_many_with, Database::bulk_write) in which some
/// documents or operations failed: code() is the first failure's status, result_json()
/// the whole result (writeErrors included). What succeeded stays written.
class BulkWriteError : public Error {
public:
    BulkWriteError(int code, std::string message, std::string result_json)
        : Error(code, std::move(message)), result_json_(std::move(result_json)) {}
    /// The call's JSON result, as the library wrote it.
    const std::string& result_json() const noexcept { return result_json_; }

private:
    std::string result_json_;
};

namespace detail {

/// Throws the error of the call that just returned `rc` on this thread. Must be called
/// before any other nexus_* call on this thread, since that would replace the message.
[[noreturn]] inline void throw_last(int rc) {
    const char* msg = nexus_errmsg();
    std::string text = msg ? std::string(msg) : std::string();
    if (rc == NEXUS_OK) {  // only reachable on a contract violation (e.g. OK from a cursor step)
        throw Error(NEXUS_INTERNAL, "unexpected NEXUS_OK status from the library");
    }
    throw Error(rc, std::move(text));
}

inline void check(int rc) {
    if (rc != NEXUS_OK) throw_last(rc);
}

struct FreeDeleter {
    void operator()(void* p) const noexcept { nexus_free(p); }
};
/// A library-owned string, released with nexus_free.
using owned_cstr = std::unique_ptr<char, FreeDeleter>;

inline std::string to_string(const owned_cstr& p) {
    return p ? std::string(p.get()) : std::string();
}

/// NUL-terminated copy of a required string argument.
class CStr {
public:
    CStr(std::string_view v, const char* what) : s_(v) {
        if (s_.find('\0') != std::string::npos) {
            throw Error(NEXUS_INVALID_ARGUMENT,
                        std::string(what) + " contains a NUL byte");
        }
    }
    const char* get() const noexcept { return s_.c_str(); }

private:
    std::string s_;
};

/// NUL-terminated copy of an optional argument: an empty view becomes NULL.
class OptCStr {
public:
    OptCStr(std::string_view v, const char* what) {
        if (!v.empty()) s_.emplace(v, what);
    }
    const char* get() const noexcept { return s_ ? s_->get() : nullptr; }

private:
    std::optional<CStr> s_;
};

[[noreturn]] inline void throw_closed(const char* what) {
    throw Error(NEXUS_INVALID_ARGUMENT, std::string(what) + " is closed or moved-from");
}

/// Overwrites the string's bytes (volatile: not optimized away), then empties it.
inline void wipe_string(std::string& s) noexcept {
    volatile char* p = s.data();
    for (std::size_t i = 0; i < s.size(); ++i) p[i] = 0;
    s.clear();
}

/// `options_json` (a JSON object, or empty for none) with the member
/// "encryption_key": private_pem added in front. Throws NEXUS_INVALID_ARGUMENT when
/// `options_json` is not empty and not an object. The result holds the key: wipe it.
inline std::string with_encryption_key(std::string_view options_json,
                                       std::string_view private_pem) {
    const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    std::string_view inner;
    while (!options_json.empty() && is_space(options_json.front())) options_json.remove_prefix(1);
    while (!options_json.empty() && is_space(options_json.back())) options_json.remove_suffix(1);
    if (!options_json.empty()) {
        if (options_json.size() < 2 || options_json.front() != '{' || options_json.back() != '}') {
            throw Error(NEXUS_INVALID_ARGUMENT, "options must be a JSON object");
        }
        inner = options_json.substr(1, options_json.size() - 2);
        while (!inner.empty() && is_space(inner.front())) inner.remove_prefix(1);
    }
    std::string out;
    out.reserve(private_pem.size() + inner.size() + 32);
    out += "{\"encryption_key\":\"";
    static const char hex[] = "0123456789abcdef";
    for (const char ch : private_pem) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c == '\n') {
            out += "\\n";
        } else if (c < 0x20) {
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += ch;
        }
    }
    out += '"';
    if (!inner.empty()) {
        out += ',';
        out += inner;
    }
    out += '}';
    return out;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------
// Flags and small result types
// ---------------------------------------------------------------------------------------

/// Flags of update / remove. Combine with |: Flags::multi | Flags::upsert.
enum class Flags : int {
    none = 0,
    multi = NEXUS_MULTI,    ///< every matching document, not just the first
    upsert = NEXUS_UPSERT,  ///< update: insert when nothing matches
};
constexpr Flags operator|(Flags a, Flags b) noexcept {
    return static_cast<Flags>(static_cast<int>(a) | static_cast<int>(b));
}
constexpr Flags operator&(Flags a, Flags b) noexcept {
    return static_cast<Flags>(static_cast<int>(a) & static_cast<int>(b));
}
constexpr bool any(Flags f) noexcept { return static_cast<int>(f) != 0; }

/// Result of update, update_one, update_many and replace_one.
struct UpdateResult {
    std::uint64_t matched = 0;   ///< documents matching the filter (that were considered)
    std::uint64_t modified = 0;  ///< documents actually changed (an upsert does not count)
    std::uint64_t upserted_count = 0;  ///< 1 when a document was upserted (not filled by update())
    /// The upserted document's _id as Extended JSON (not filled by update()).
    std::optional<std::string> upserted_id;
};

/// Options of update_one, update_many and replace_one (MongoDB's names); JSON fields are
/// empty when not given.
struct UpdateOptions {
    bool upsert = false;
    std::string array_filters;  ///< JSON array of filters for the $[<identifier>] paths
    std::string sort;           ///< JSON sort: which match update_one / replace_one change
    std::string hint;           ///< JSON index name (a JSON string) or key pattern
};

/// Result of insert_many_with and bulk_write: the library's JSON (MongoDB's names:
/// insertedCount, insertedIds, ... writeErrors), and the counts most callers read.
struct BatchResult {
    std::string json;
    std::uint64_t inserted_count = 0;
};

namespace detail {

/// The number after "key": in a flat JSON result (0 when missing).
inline std::uint64_t json_count(const std::string& json, std::string_view key) {
    std::string k = "\"" + std::string(key) + "\":";
    std::size_t at = json.find(k);
    if (at == std::string::npos) return 0;
    return std::strtoull(json.c_str() + at + k.size(), nullptr, 10);
}

/// The raw JSON value after "key": (nullopt when missing). Values are the library's
/// compact JSON: strings, numbers, or objects/arrays without unbalanced brackets in strings.
inline std::optional<std::string> json_value(const std::string& json, std::string_view key) {
    std::string k = "\"" + std::string(key) + "\":";
    std::size_t at = json.find(k);
    if (at == std::string::npos) return std::nullopt;
    std::size_t i = at + k.size(), start = i;
    int depth = 0;
    bool in_str = false;
    for (; i < json.size(); ++i) {
        char ch = json[i];
        if (in_str) {
            if (ch == '\\') ++i;
            else if (ch == '"') in_str = false;
            continue;
        }
        if (ch == '"') in_str = true;
        else if (ch == '{' || ch == '[') ++depth;
        else if (ch == '}' || ch == ']') {
            if (depth == 0) break;
            --depth;
        } else if (ch == ',' && depth == 0) break;
    }
    return json.substr(start, i - start);
}

inline UpdateResult update_result(const std::string& json) {
    UpdateResult r;
    r.matched = json_count(json, "matchedCount");
    r.modified = json_count(json, "modifiedCount");
    r.upserted_count = json_count(json, "upsertedCount");
    r.upserted_id = json_value(json, "upsertedId");
    return r;
}

inline std::string update_options_json(const UpdateOptions& o) {
    std::string j = "{";
    auto add = [&j](const char* k, const std::string& v) {
        if (v.empty()) return;
        if (j.size() > 1) j += ',';
        j += '"';
        j += k;
        j += "\":";
        j += v;
    };
    if (o.upsert) add("upsert", "true");
    add("arrayFilters", o.array_filters);
    add("sort", o.sort);
    add("hint", o.hint);
    return j + "}";
}

}  // namespace detail

/// A borrowed BSON document from Cursor::next_bson (valid until the cursor advances).
struct BsonView {
    const std::uint8_t* data = nullptr;
    std::size_t size = 0;
};

/// Signature of the log callback (see set_log_callback). It runs on library threads and
/// must not throw (an exception must never unwind through the library).
using LogFn = void (*)(int level, const char* target, const char* message, void* user);

/// Installs (or, with fn == nullptr, removes) the process-wide log callback.
inline void set_log_callback(LogFn fn, int max_level, void* user = nullptr) {
    detail::check(nexus_set_log_callback(fn, max_level, user));
}

// ---------------------------------------------------------------------------------------
// Cursor
// ---------------------------------------------------------------------------------------

/// A stream of result documents from Database::find, over a consistent snapshot.
///
/// Iterate with range-for (an input iterator: one pass, each element a borrowed
/// std::string_view valid until the next step):
///
///     for (std::string_view doc : db.find("c", filter, options)) ...
///
/// or step by hand with next() / next_bson(). Move-only; closes in its destructor.
/// Use from one thread at a time.
class Cursor {
public:
    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = std::string_view;
        using difference_type = std::ptrdiff_t;
        using pointer = const std::string_view*;
        using reference = const std::string_view&;

        /// Keeps a copy of the element for `*it++` (the borrowed view dies on advance).
        class postfix_proxy {
        public:
            explicit postfix_proxy(std::string_view v) : value_(v) {}
            const std::string& operator*() const noexcept { return value_; }

        private:
            std::string value_;
        };

        iterator() noexcept = default;  // the end iterator

        reference operator*() const noexcept { return doc_; }
        pointer operator->() const noexcept { return &doc_; }
        iterator& operator++() {
            advance();
            return *this;
        }
        postfix_proxy operator++(int) {
            postfix_proxy p(doc_);
            advance();
            return p;
        }
        friend bool operator==(const iterator& a, const iterator& b) noexcept {
            return a.cursor_ == b.cursor_;
        }
        friend bool operator!=(const iterator& a, const iterator& b) noexcept {
            return !(a == b);
        }

    private:
        friend class Cursor;
        explicit iterator(Cursor* c) : cursor_(c) { advance(); }
        void advance() {
            if (!cursor_) return;
            std::optional<std::string_view> d = cursor_->next();
            if (d) {
                doc_ = *d;
            } else {
                cursor_ = nullptr;
                doc_ = std::string_view();
            }
        }

        Cursor* cursor_ = nullptr;
        std::string_view doc_;
    };

    Cursor() noexcept = default;  // empty
    /// Takes ownership of a C cursor handle (may be null).
    explicit Cursor(nexus_cursor* c) noexcept : c_(c) {}
    Cursor(const Cursor&) = delete;
    Cursor& operator=(const Cursor&) = delete;
    Cursor(Cursor&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
    Cursor& operator=(Cursor&& o) noexcept {
        if (this != &o) {
            reset();
            c_ = std::exchange(o.c_, nullptr);
        }
        return *this;
    }
    ~Cursor() { reset(); }

    /// Next document as JSON, or nullopt at the end. The view is borrowed: valid until
    /// the next step or close.
    std::optional<std::string_view> next() {
        const char* out = nullptr;
        int rc = nexus_cursor_next(require(), &out);
        if (rc == NEXUS_ROW) return out ? std::string_view(out) : std::string_view();
        if (rc == NEXUS_DONE) return std::nullopt;
        detail::throw_last(rc);
    }

    /// Next document as raw BSON, or nullopt at the end (borrowed, as for next()).
    std::optional<BsonView> next_bson() {
        const std::uint8_t* out = nullptr;
        std::size_t len = 0;
        int rc = nexus_cursor_next_bson(require(), &out, &len);
        if (rc == NEXUS_ROW) return BsonView{out, len};
        if (rc == NEXUS_DONE) return std::nullopt;
        detail::throw_last(rc);
    }

    /// Reads every remaining document into owned strings.
    std::vector<std::string> to_vector() {
        std::vector<std::string> docs;
        while (std::optional<std::string_view> d = next()) docs.emplace_back(*d);
        return docs;
    }

    /// Starts (or, for an input iterator, continues) the iteration: fetches the next row.
    iterator begin() { return iterator(this); }
    iterator end() noexcept { return iterator(); }

    /// Closes now and reports the status; the cursor is empty afterwards either way.
    void close() {
        if (!c_) return;
        detail::check(nexus_cursor_close(std::exchange(c_, nullptr)));
    }

    explicit operator bool() const noexcept { return c_ != nullptr; }
    nexus_cursor* handle() const noexcept { return c_; }
    /// Gives up ownership of the C handle (the caller must nexus_cursor_close it).
    nexus_cursor* release() noexcept { return std::exchange(c_, nullptr); }

private:
    nexus_cursor* require() const {
        if (!c_) detail::throw_closed("nexus::Cursor");
        return c_;
    }
    void reset() noexcept {
        if (c_) (void)nexus_cursor_close(std::exchange(c_, nullptr));
    }

    nexus_cursor* c_ = nullptr;
};

class Transaction;
class Key;

// ---------------------------------------------------------------------------------------
// Database
// ---------------------------------------------------------------------------------------

/// A connection to a database (nexus_db). Move-only; the destructor closes it.
/// Safe to share between threads (see the top of this file).
class Database {
public:
    Database() noexcept = default;  // empty; assign an opened Database to it

    /// Opens (by default creates) the database at `path`; ":memory:" is a private
    /// in-memory database. `options_json` is a JSON object such as
    /// {"create":true,"read_only":false,"sync":"full"} (empty = defaults).
    explicit Database(std::string_view path, std::string_view options_json = {}) {
        detail::CStr p(path, "path");
        detail::OptCStr o(options_json, "options");
        nexus_db* db = nullptr;
        detail::check(nexus_open(p.get(), o.get(), &db));
        db_ = db;
    }
    [[nodiscard]] static Database open(std::string_view path,
                                       std::string_view options_json = {}) {
        return Database(path, options_json);
    }
    /// Opens (by default creates) an encrypted database: the open option "encryption_key"
    /// (a P-256 private key, PKCS#8 PEM) added to `options_json` (a JSON object or empty).
    /// A new file is created encrypted to that key. Errors (nexus::Error::code()):
    /// NEXUS_CRYPTO for an encrypted file this key is not a recipient of,
    /// NEXUS_INVALID_ARGUMENT for a plain file or a malformed key, NEXUS_UNSUPPORTED for
    /// ":memory:" and the memlog storage. Opening an encrypted file with plain open() is
    /// NEXUS_CRYPTO.
    [[nodiscard]] static Database open_encrypted(std::string_view path,
                                                 std::string_view private_pem,
                                                 std::string_view options_json = {}) {
        detail::CStr p(path, "path");
        if (private_pem.find('\0') != std::string_view::npos) {
            throw Error(NEXUS_INVALID_ARGUMENT, "private key contains a NUL byte");
        }
        std::string options = detail::with_encryption_key(options_json, private_pem);
        if (options.find('\0') != std::string::npos) {
            detail::wipe_string(options);
            throw Error(NEXUS_INVALID_ARGUMENT, "options contains a NUL byte");
        }
        nexus_db* db = nullptr;
        const int rc = nexus_open(p.get(), options.c_str(), &db);
        detail::wipe_string(options);  // the only copy of the options, key included
        detail::check(rc);
        return adopt(db);
    }
    /// open_encrypted with the private key of `key` (throws if it has none).
    [[nodiscard]] static Database open_encrypted(std::string_view path, const Key& key,
                                                 std::string_view options_json = {});
    /// Takes ownership of a C connection handle (may be null).
    static Database adopt(nexus_db* db) noexcept {
        Database d;
        d.db_ = db;
        return d;
    }

    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;
    Database(Database&& o) noexcept : db_(std::exchange(o.db_, nullptr)) {}
    Database& operator=(Database&& o) noexcept {
        if (this != &o) {
            reset();
            db_ = std::exchange(o.db_, nullptr);
        }
        return *this;
    }
    ~Database() { reset(); }

    /// Closes now and reports the status; the object is empty afterwards either way.
    void close() {
        if (!db_) return;
        detail::check(nexus_close(std::exchange(db_, nullptr)));
    }
    explicit operator bool() const noexcept { return db_ != nullptr; }
    bool is_open() const noexcept { return db_ != nullptr; }
    nexus_db* handle() const noexcept { return db_; }
    /// Gives up ownership of the C handle (the caller must nexus_close it).
    nexus_db* release() noexcept { return std::exchange(db_, nullptr); }

    // -- collections -----------------------------------------------------------------

    /// Creates a collection; NEXUS_DUPLICATE_KEY if it exists. Names starting with '_'
    /// are reserved. (Inserting into a missing collection also creates it.)
    void create_collection(std::string_view name, std::string_view options_json = {}) {
        detail::CStr n(name, "collection name");
        detail::OptCStr o(options_json, "options");
        detail::check(nexus_create_collection(require(), n.get(), o.get()));
    }
    void drop_collection(std::string_view name) {
        detail::CStr n(name, "collection name");
        detail::check(nexus_drop_collection(require(), n.get()));
    }
    void rename_collection(std::string_view from, std::string_view to) {
        detail::CStr f(from, "collection name"), t(to, "collection name");
        detail::check(nexus_rename_collection(require(), f.get(), t.get()));
    }
    /// JSON array of collection names, e.g. ["a","b"].
    std::string list_collections() {
        char* out = nullptr;
        int rc = nexus_list_collections(require(), &out);
        detail::owned_cstr guard(out);
        detail::check(rc);
        return detail::to_string(guard);
    }

    // -- documents -------------------------------------------------------------------

    /// Inserts one JSON document; returns its _id as a string (a new UUID v4 if the
    /// document had none). NEXUS_DUPLICATE_KEY if the _id exists.
    std::string insert(std::string_view coll, std::string_view json) {
        detail::CStr c(coll, "collection name"), j(json, "document");
        char* out = nullptr;
        int rc = nexus_insert(require(), c.get(), j.get(), &out);
        detail::owned_cstr guard(out);
        detail::check(rc);
        return detail::to_string(guard);
    }
    /// Inserts one raw BSON document; returns its _id.
    std::string insert_bson(std::string_view coll, const std::uint8_t* bson, std::size_t len) {
        detail::CStr c(coll, "collection name");
        char* out = nullptr;
        int rc = nexus_insert_bson(require(), c.get(), bson, len, &out);
        detail::owned_cstr guard(out);
        detail::check(rc);
        return detail::to_string(guard);
    }
    std::string insert_bson(std::string_view coll, const std::vector<std::uint8_t>& bson) {
        return insert_bson(coll, bson.data(), bson.size());
    }
    /// Inserts a JSON array of documents atomically (all or none); returns the count.
    std::uint64_t insert_many(std::string_view coll, std::string_view json_array) {
        detail::CStr c(coll, "collection name"), j(json_array, "document array");
        std::uint64_t n = 0;
        detail::check(nexus_insert_many(require(), c.get(), j.get(), &n));
        return n;
    }
    /// Same, from separate JSON documents.
    std::uint64_t insert_many(std::string_view coll, const std::vector<std::string>& docs) {
        std::string arr = "[";
        for (std::size_t i = 0; i < docs.size(); ++i) {
            if (i) arr += ',';
            arr += docs[i];
        }
        arr += ']';
        return insert_many(coll, std::string_view(arr));
    }
    /// Inserts an ephemeral document that expires `ttl` after insertion; returns its _id.
    std::string insert_ttl(std::string_view coll, std::string_view json,
                           std::chrono::milliseconds ttl) {
        if (ttl.count() < 0) throw Error(NEXUS_INVALID_ARGUMENT, "ttl must not be negative");
        detail::CStr c(coll, "collection name"), j(json, "document");
        char* out = nullptr;
        int rc = nexus_insert_ttl(require(), c.get(), j.get(),
                                  static_cast<std::uint64_t>(ttl.count()), &out);
        detail::owned_cstr guard(out);
        detail::check(rc);
        return detail::to_string(guard);
    }
    /// The document with this _id (string form as returned by insert), or nullopt.
    /// A missing collection throws NEXUS_NO_COLLECTION.
    std::optional<std::string> get(std::string_view coll, std::string_view id) {
        detail::CStr c(coll, "collection name"), i(id, "id");
        char* out = nullptr;
        int rc = nexus_get(require(), c.get(), i.get(), &out);
        detail::owned_cstr guard(out);
        if (rc == NEXUS_NOT_FOUND) return std::nullopt;
        detail::check(rc);
        return detail::to_string(guard);
    }
    /// Metadata of a document as JSON ({"created_at","updated_at","version",
    /// "expires_at","ephemeral",...}), or nullopt if there is no such document.
    std::optional<std::string> get_meta(std::string_view coll, std::string_view id) {
        detail::CStr c(coll, "collection name"), i(id, "id");
        char* out = nullptr;
        int rc = nexus_get_meta(require(), c.get(), i.get(), &out);
        detail::owned_cstr guard(out);
        if (rc == NEXUS_NOT_FOUND) return std::nullopt;
        detail::check(rc);
        return detail::to_string(guard);
    }
    /// Replaces the whole document with this _id; NEXUS_NOT_FOUND if there is none.
    void replace(std::string_view coll, std::string_view id, std::string_view json) {
        detail::CStr c(coll, "collection name"), i(id, "id"), j(json, "document");
        detail::check(nexus_replace(require(), c.get(), i.get(), j.get()));
    }
    /// Sets a document's time to live from now.
    void set_ttl(std::string_view coll, std::string_view id, std::chrono::milliseconds ttl) {
        if (ttl.count() < 0) throw Error(NEXUS_INVALID_ARGUMENT, "ttl must not be negative");
        detail::CStr c(coll, "collection name"), i(id, "id");
        detail::check(nexus_set_ttl(require(), c.get(), i.get(),
                                    static_cast<std::int64_t>(ttl.count())));
    }
    /// Removes a document's expiry (nexus_set_ttl with a negative ttl).
    void persist(std::string_view coll, std::string_view id) {
        detail::CStr c(coll, "collection name"), i(id, "id");
        detail::check(nexus_set_ttl(require(), c.get(), i.get(), -1));
    }

    // -- queries and updates ---------------------------------------------------------

    /// Streams the documents matching `filter` (empty = all). Options: sort, projection,
    /// skip, limit, hint, e.g. {"sort":{"age":-1},"limit":10}. A missing collection
    /// gives an empty cursor.
    [[nodiscard]] Cursor find(std::string_view coll, std::string_view filter = {},
                              std::string_view options_json = {}) {
        detail::CStr c(coll, "collection name");
        detail::OptCStr f(filter, "filter"), o(options_json, "options");
        nexus_cursor* cur = nullptr;
        int rc = nexus_find(require(), c.get(), f.get(), o.get(), &cur);
        Cursor guard(cur);
        detail::check(rc);
        return guard;
    }
    /// Runs an aggregation pipeline (a JSON array of stages) over `coll` and streams the
    /// results. Options: let, allowDiskUse, maxMemoryBytes, batchSize, explain (see
    /// docs/API.md). Throws
    /// nexus::Error (NEXUS_UNSUPPORTED names a stage or operator not built).
    [[nodiscard]] Cursor aggregate(std::string_view coll, std::string_view pipeline_json,
                                   std::string_view options_json = {}) {
        detail::CStr c(coll, "collection name"), p(pipeline_json, "pipeline");
        detail::OptCStr o(options_json, "options");
        nexus_cursor* cur = nullptr;
        int rc = nexus_aggregate(require(), c.get(), p.get(), o.get(), &cur);
        Cursor guard(cur);
        detail::check(rc);
        return guard;
    }
    /// Runs a vector search over a vector index (create_index with `{"field":"hnsw"}`):
    /// `spec_json` is MongoDB Atlas's $vectorSearch body (path, queryVector, limit,
    /// numCandidates, filter, exact, index) plus projection and scoreField (default
    /// "_score"). Streams the documents best first, each with its score. Throws
    /// nexus::Error (NEXUS_INVALID_ARGUMENT: a bad spec, a query vector of another
    /// dimension, no vector index on the path).
    [[nodiscard]] Cursor vector_search(std::string_view coll, std::string_view spec_json) {
        detail::CStr c(coll, "collection name"), s(spec_json, "spec");
        nexus_cursor* cur = nullptr;
        int rc = nexus_vector_search(require(), c.get(), s.get(), &cur);
        Cursor guard(cur);
        detail::check(rc);
        return guard;
    }
    /// The first document matching `filter`, or nullopt.
    std::optional<std::string> find_one(std::string_view coll, std::string_view filter = {}) {
        detail::CStr c(coll, "collection name");
        detail::OptCStr f(filter, "filter");
        char* out = nullptr;
        int rc = nexus_find_one(require(), c.get(), f.get(), &out);
        detail::owned_cstr guard(out);
        if (rc == NEXUS_NOT_FOUND) return std::nullopt;
        detail::check(rc);
        if (!guard) return std::nullopt;
        return detail::to_string(guard);
    }
    /// Number of documents matching `filter` (empty = all; missing collection = 0).
    std::uint64_t count(std::string_view coll, std::string_view filter = {}) {
        detail::CStr c(coll, "collection name");
        detail::OptCStr f(filter, "filter");
        std::uint64_t n = 0;
        detail::check(nexus_count(require(), c.get(), f.get(), &n));
        return n;
    }
    /// Applies an update document ({"$set":...}, {"$inc":...}, ...) to the first match,
    /// or to every match with Flags::multi; Flags::upsert inserts when nothing matches.
    UpdateResult update(std::string_view coll, std::string_view filter,
                        std::string_view update_json, Flags flags = Flags::none) {
        detail::CStr c(coll, "collection name"), u(update_json, "update");
        detail::OptCStr f(filter, "filter");
        UpdateResult r;
        detail::check(nexus_update(require(), c.get(), f.get(), u.get(),
                                   static_cast<int>(flags), &r.matched, &r.modified));
        return r;
    }
    /// Applies update operators (nexus_update_one) to the first match (the first by
    /// options.sort), or upserts. A document without operators throws
    /// NEXUS_INVALID_ARGUMENT ("update document requires atomic operators").
    UpdateResult update_one(std::string_view coll, std::string_view filter,
                            std::string_view update_json, const UpdateOptions& options) {
        return update_call(nexus_update_one, coll, filter, update_json, options);
    }
    UpdateResult update_one(std::string_view coll, std::string_view filter,
                            std::string_view update_json, bool upsert = false) {
        UpdateOptions o;
        o.upsert = upsert;
        return update_one(coll, filter, update_json, o);
    }
    /// As update_one, for every match (nexus_update_many); options.sort is refused.
    UpdateResult update_many(std::string_view coll, std::string_view filter,
                             std::string_view update_json, const UpdateOptions& options) {
        return update_call(nexus_update_many, coll, filter, update_json, options);
    }
    UpdateResult update_many(std::string_view coll, std::string_view filter,
                             std::string_view update_json, bool upsert = false) {
        UpdateOptions o;
        o.upsert = upsert;
        return update_many(coll, filter, update_json, o);
    }
    /// Replaces the body of the first match, keeping its _id (nexus_replace_one), or
    /// upserts. A replacement with operators throws NEXUS_INVALID_ARGUMENT.
    UpdateResult replace_one(std::string_view coll, std::string_view filter,
                             std::string_view replacement_json,
                             const UpdateOptions& options = {}) {
        return update_call(nexus_replace_one, coll, filter, replacement_json, options);
    }
    /// Inserts a JSON array of documents in order (nexus_insert_many_with); options_json
    /// {"ordered": false} tries every document. When some fail, throws BulkWriteError (the
    /// first failure's code, and the result); the others stay inserted.
    BatchResult insert_many_with(std::string_view coll, std::string_view json_array,
                                 std::string_view options_json = {}) {
        return batch_call(nexus_insert_many_with, coll, json_array, options_json);
    }
    /// Applies a JSON array of write models (nexus_bulk_write: insertOne, updateOne,
    /// updateMany, replaceOne, deleteOne, deleteMany). When some fail, throws
    /// BulkWriteError; the operations before (and, unordered, after) a failure stay.
    BatchResult bulk_write(std::string_view coll, std::string_view operations_json,
                           std::string_view options_json = {}) {
        return batch_call(nexus_bulk_write, coll, operations_json, options_json);
    }
    /// Deletes the first match, or every match with Flags::multi; returns how many.
    /// (nexus_delete; `delete` is a C++ keyword.)
    std::uint64_t remove(std::string_view coll, std::string_view filter,
                         Flags flags = Flags::none) {
        detail::CStr c(coll, "collection name");
        detail::OptCStr f(filter, "filter");
        std::uint64_t n = 0;
        detail::check(nexus_delete(require(), c.get(), f.get(), static_cast<int>(flags), &n));
        return n;
    }
    std::uint64_t delete_one(std::string_view coll, std::string_view filter) {
        return remove(coll, filter, Flags::none);
    }
    std::uint64_t delete_many(std::string_view coll, std::string_view filter) {
        return remove(coll, filter, Flags::multi);
    }
    /// JSON array of the distinct values of `field` among the matching documents.
    std::string distinct(std::string_view coll, std::string_view field,
                         std::string_view filter = {}) {
        detail::CStr c(coll, "collection name"), fl(field, "field");
        detail::OptCStr f(filter, "filter");
        char* out = nullptr;
        int rc = nexus_distinct(require(), c.get(), fl.get(), f.get(), &out);
        detail::owned_cstr guard(out);
        detail::check(rc);
        return detail::to_string(guard);
    }
    /// Updates one document atomically (the first by the `sort` option) and returns it as
    /// it was before the update, or after it with {"return":"after"}; options also take
    /// `projection` and `upsert`. nullopt when there is no document to return: nothing
    /// matched and nothing was upserted (NEXUS_NOT_FOUND), or the "before" image of an
    /// upsert (the library's JSON `null`).
    std::optional<std::string> find_one_and_update(std::string_view coll,
                                                   std::string_view filter,
                                                   std::string_view update_json,
                                                   std::string_view options_json = {}) {
        detail::CStr c(coll, "collection name"), u(update_json, "update");
        detail::OptCStr f(filter, "filter"), o(options_json, "options");
        char* out = nullptr;
        int rc = nexus_find_one_and_update(require(), c.get(), f.get(), u.get(), o.get(), &out);
        detail::owned_cstr guard(out);
        if (rc == NEXUS_NOT_FOUND) return std::nullopt;
        detail::check(rc);
        if (!guard || std::string_view(guard.get()) == "null") return std::nullopt;
        return detail::to_string(guard);
    }
    /// Deletes one document atomically (the first by the `sort` option) and returns it
    /// (shaped by the `projection` option); nullopt when nothing matched.
    std::optional<std::string> find_one_and_delete(std::string_view coll,
                                                   std::string_view filter,
                                                   std::string_view options_json = {}) {
        detail::CStr c(coll, "collection name");
        detail::OptCStr f(filter, "filter"), o(options_json, "options");
        char* out = nullptr;
        int rc = nexus_find_one_and_delete(require(), c.get(), f.get(), o.get(), &out);
        detail::owned_cstr guard(out);
        if (rc == NEXUS_NOT_FOUND) return std::nullopt;
        detail::check(rc);
        if (!guard) return std::nullopt;
        return detail::to_string(guard);
    }

    // -- indexes ---------------------------------------------------------------------

    /// Creates a secondary index on keys such as {"user.email":1} or {"a":1,"b":-1} and
    /// builds it over the existing documents; returns its name (MongoDB's default, e.g.
    /// "a_1_b_-1", or options' "name"). Options: unique, sparse, name,
    /// partialFilterExpression, expireAfterSeconds. An identical existing index returns its
    /// name. Throws NEXUS_DUPLICATE_KEY when a unique index meets duplicates (nothing is
    /// created); later inserts and updates that would duplicate a unique key throw it too.
    std::string create_index(std::string_view coll, std::string_view keys_json,
                             std::string_view options_json = {}) {
        detail::CStr c(coll, "collection name"), k(keys_json, "index keys");
        detail::OptCStr o(options_json, "options");
        char* out = nullptr;
        int rc = nexus_create_index(require(), c.get(), k.get(), o.get(), &out);
        detail::owned_cstr guard(out);
        detail::check(rc);
        return detail::to_string(guard);
    }
    /// Drops the index `name` (NEXUS_NOT_FOUND when there is none; the _id index cannot be
    /// dropped: NEXUS_INVALID_ARGUMENT).
    void drop_index(std::string_view coll, std::string_view name) {
        detail::CStr c(coll, "collection name"), n(name, "index name");
        detail::check(nexus_drop_index(require(), c.get(), n.get()));
    }
    /// The indexes of `coll` as a JSON array of {"v":2,"key":{...},"name":"..."} plus their
    /// options, the _id index ("_id_") first.
    std::string list_indexes(std::string_view coll) {
        detail::CStr c(coll, "collection name");
        char* out = nullptr;
        int rc = nexus_list_indexes(require(), c.get(), &out);
        detail::owned_cstr guard(out);
        detail::check(rc);
        return detail::to_string(guard);
    }
    /// Runs find(coll, filter, options) and reports the plan as JSON in MongoDB's shape:
    /// {"queryPlanner":{"winningPlan":{"stage":"FETCH","inputStage":{"stage":"IXSCAN",
    /// "indexName":...}} or {"stage":"COLLSCAN"},"rejectedPlans":[...]},"executionStats":
    /// {"nReturned":..,"totalKeysExamined":..,"totalDocsExamined":..}}.
    std::string explain(std::string_view coll, std::string_view filter = {},
                        std::string_view options_json = {}) {
        detail::CStr c(coll, "collection name");
        detail::OptCStr f(filter, "filter"), o(options_json, "options");
        char* out = nullptr;
        int rc = nexus_explain(require(), c.get(), f.get(), o.get(), &out);
        detail::owned_cstr guard(out);
        detail::check(rc);
        return detail::to_string(guard);
    }

    // -- transactions (per connection) -----------------------------------------------

    /// Low-level transaction control; prefer the Transaction guard (transaction()).
    void begin() { detail::check(nexus_begin(require())); }
    /// A read transaction: one snapshot for every read until commit() or rollback(); no lock,
    /// writes through this connection meanwhile throw (NEXUS_READONLY).
    void begin_read() { detail::check(nexus_begin_read(require())); }
    void commit() { detail::check(nexus_commit(require())); }
    void rollback() { detail::check(nexus_rollback(require())); }
    /// Begins a transaction and returns its guard, which rolls back unless committed.
    [[nodiscard]] Transaction transaction();

    // -- maintenance and observability -----------------------------------------------

    void checkpoint() { detail::check(nexus_checkpoint(require())); }
    void compact() { detail::check(nexus_compact(require())); }
    /// Removes expired ephemeral documents now; returns how many.
    std::uint64_t purge_expired() {
        std::uint64_t n = 0;
        detail::check(nexus_purge_expired(require(), &n));
        return n;
    }
    /// Adds a recipient to this encrypted database: the holder of the private key of
    /// `public_pem` (SPKI PEM, P-256) can open it from now on; a key it already has changes
    /// nothing. NEXUS_INVALID_ARGUMENT on a plain database or for a malformed key.
    void add_key(std::string_view public_pem) {
        detail::CStr k(public_pem, "public key");
        detail::check(nexus_add_key(require(), k.get()));
    }
    /// Removes a recipient of this encrypted database. NEXUS_INVALID_ARGUMENT for its last
    /// key, a key that is not a recipient, a plain database.
    void remove_key(std::string_view public_pem) {
        detail::CStr k(public_pem, "public key");
        detail::check(nexus_remove_key(require(), k.get()));
    }
    /// Changes the data key of this encrypted database: every page rewritten under a new
    /// random key, the same recipients. NEXUS_BUSY while other processes have it open.
    void rekey() { detail::check(nexus_rekey(require())); }
    /// The same with the public key of `key`.
    void add_key(const Key& key);
    void remove_key(const Key& key);
    /// Consistent online copy of the database to `dest_path` (an encrypted database's copy
    /// is encrypted to the same keys).
    void backup(std::string_view dest_path) {
        detail::CStr d(dest_path, "backup path");
        detail::check(nexus_backup(require(), d.get()));
    }
    /// `backup` with options (JSON): `encrypt_to` (array of public key PEMs: a copy under a
    /// fresh data key for them), `decrypt` (true: a plain copy), `sign_key` (private key
    /// PEM: writes DEST.sig).
    void backup_with(std::string_view dest_path, std::string_view options_json) {
        detail::CStr d(dest_path, "backup path");
        detail::CStr o(options_json, "backup options");
        detail::check(nexus_backup_with(require(), d.get(), o.get()));
    }
    /// Integrity check; returns the report JSON (throws NEXUS_CORRUPT if damaged).
    std::string check() {
        char* out = nullptr;
        int rc = nexus_check(require(), &out);
        detail::owned_cstr guard(out);
        detail::check(rc);
        return detail::to_string(guard);
    }
    /// Statistics (caches, pages, log size, ...) as a JSON object.
    std::string stats() {
        char* out = nullptr;
        int rc = nexus_stats(require(), &out);
        detail::owned_cstr guard(out);
        detail::check(rc);
        return detail::to_string(guard);
    }
    /// Runtime tuning (cache sizes, TTL sweeper, ...), a JSON object of options.
    void configure(std::string_view options_json) {
        detail::CStr o(options_json, "options");
        detail::check(nexus_configure(require(), o.get()));
    }
    /// Imports documents from a file into `coll`; returns the report JSON.
    /// (nexus_import; named import_file because `import` is special in C++20.)
    std::string import_file(std::string_view coll, std::string_view path,
                            std::string_view options_json = {}) {
        detail::CStr c(coll, "collection name"), p(path, "path");
        detail::OptCStr o(options_json, "options");
        char* out = nullptr;
        int rc = nexus_import(require(), c.get(), p.get(), o.get(), &out);
        detail::owned_cstr guard(out);
        detail::check(rc);
        return detail::to_string(guard);
    }
    /// Exports `coll` to a file; returns the report JSON. (nexus_export; `export` is a
    /// C++ keyword.)
    std::string export_file(std::string_view coll, std::string_view path,
                            std::string_view options_json = {}) {
        detail::CStr c(coll, "collection name"), p(path, "path");
        detail::OptCStr o(options_json, "options");
        char* out = nullptr;
        int rc = nexus_export(require(), c.get(), p.get(), o.get(), &out);
        detail::owned_cstr guard(out);
        detail::check(rc);
        return detail::to_string(guard);
    }

private:
    nexus_db* require() const {
        if (!db_) detail::throw_closed("nexus::Database");
        return db_;
    }
    using UpdateFn = int (*)(nexus_db*, const char*, const char*, const char*, const char*,
                             char**);
    UpdateResult update_call(UpdateFn fn, std::string_view coll, std::string_view filter,
                             std::string_view update_json, const UpdateOptions& options) {
        detail::CStr c(coll, "collection name"), u(update_json, "update");
        detail::OptCStr f(filter, "filter");
        std::string opts = detail::update_options_json(options);
        detail::CStr o(opts, "options");
        char* out = nullptr;
        int rc = fn(require(), c.get(), f.get(), u.get(), o.get(), &out);
        detail::owned_cstr guard(out);
        detail::check(rc);
        return detail::update_result(detail::to_string(guard));
    }
    using BatchFn = int (*)(nexus_db*, const char*, const char*, const char*, char**);
    BatchResult batch_call(BatchFn fn, std::string_view coll, std::string_view input,
                           std::string_view options_json) {
        detail::CStr c(coll, "collection name"), in(input, "input");
        detail::OptCStr o(options_json, "options");
        char* out = nullptr;
        int rc = fn(require(), c.get(), in.get(), o.get(), &out);
        detail::owned_cstr guard(out);
        BatchResult r;
        r.json = detail::to_string(guard);
        r.inserted_count = detail::json_count(r.json, "insertedCount");
        if (rc != NEXUS_OK && guard) {
            const char* msg = nexus_errmsg();
            throw BulkWriteError(rc, msg ? msg : "", r.json);
        }
        detail::check(rc);
        return r;
    }
    void reset() noexcept {
        if (db_) (void)nexus_close(std::exchange(db_, nullptr));
    }

    nexus_db* db_ = nullptr;
};

// ---------------------------------------------------------------------------------------
// Transaction guard
// ---------------------------------------------------------------------------------------

/// RAII transaction: begins in the constructor, rolls back in the destructor unless
/// commit() or rollback() was called. Move-only. The Database must outlive the guard and
/// must not be moved while the guard is active.
///
///     {
///         nexus::Transaction txn(db);   // or: auto txn = db.transaction();
///         db.insert(...); db.update(...);
///         txn.commit();                 // without this (e.g. on an exception): rollback
///     }
class Transaction {
public:
    explicit Transaction(Database& db) : db_(&db) {
        db.begin();
        active_ = true;
    }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    Transaction(Transaction&& o) noexcept
        : db_(std::exchange(o.db_, nullptr)), active_(std::exchange(o.active_, false)) {}
    Transaction& operator=(Transaction&& o) noexcept {
        if (this != &o) {
            abandon();
            db_ = std::exchange(o.db_, nullptr);
            active_ = std::exchange(o.active_, false);
        }
        return *this;
    }
    ~Transaction() { abandon(); }

    /// Commits. If the commit fails the guard stays active, so its destructor still
    /// attempts a rollback (errors ignored).
    void commit() {
        require();
        db_->commit();
        active_ = false;
    }
    /// Rolls back now (and reports the status); the guard is finished afterwards.
    void rollback() {
        require();
        active_ = false;
        db_->rollback();
    }
    bool active() const noexcept { return active_; }

private:
    void require() const {
        if (!db_ || !active_) throw Error(NEXUS_TXN, "nexus::Transaction is not active");
    }
    void abandon() noexcept {
        if (db_ && active_) {
            active_ = false;
            if (nexus_db* h = db_->handle()) (void)nexus_rollback(h);
        }
    }

    Database* db_ = nullptr;
    bool active_ = false;
};

inline Transaction Database::transaction() { return Transaction(*this); }

// ---------------------------------------------------------------------------------------
// Keys and signatures
// ---------------------------------------------------------------------------------------

/// A P-256 key pair, or a public key alone, as the PEM OpenSSL reads (PKCS#8 private key,
/// SPKI public key). Signatures are ECDSA-SHA256: DER in base64 for bytes in memory, a
/// PATH.sig file for files (what `openssl dgst -sha256 -sign` writes). A signature that
/// does not match makes verify() / verify_file() return false; a malformed key throws
/// Error (NEXUS_INVALID_ARGUMENT). Move-only; the private key's bytes are overwritten
/// with zeros when the Key is destroyed or moved from.
class Key {
public:
    /// A new key pair ("p256", the default algorithm). A library built with the cargo
    /// feature pqc also makes "ml-dsa-65", "slh-dsa-sha2-128s", "slh-dsa-sha2-192s",
    /// "slh-dsa-sha2-256s" (signature keys: sign / verify take them, signatures are the raw
    /// FIPS bytes) and "ml-kem-512", "ml-kem-768", "ml-kem-1024" (hybrid P-256 + ML-KEM
    /// encryption keys, which do not sign); without it those throw Error(NEXUS_UNSUPPORTED).
    static Key generate(std::string_view algorithm = {}) {
        detail::OptCStr a(algorithm, "algorithm");
        char* priv = nullptr;
        char* pub = nullptr;
        detail::check(nexus_keygen(a.get(), &priv, &pub));
        detail::owned_cstr p(priv), q(pub);
        return Key(detail::to_string(p), detail::to_string(q));
    }
    /// The key pair of a private key (its public key derived).
    static Key from_private_pem(std::string_view private_pem) {
        std::string priv(private_pem);
        detail::CStr c(priv, "private key");
        char* pub = nullptr;
        const int rc = nexus_public_key(c.get(), &pub);
        wipe(priv);
        detail::check(rc);
        detail::owned_cstr q(pub);
        return Key(std::string(private_pem), detail::to_string(q));
    }
    /// A public key alone (verification only).
    static Key from_public_pem(std::string_view public_pem) {
        return Key(std::string(), std::string(public_pem));
    }

    Key(Key&& o) noexcept : private_(std::move(o.private_)), public_(std::move(o.public_)) {
        wipe(o.private_);
    }
    Key& operator=(Key&& o) noexcept {
        if (this != &o) {
            wipe(private_);
            private_ = std::move(o.private_);
            public_ = std::move(o.public_);
            wipe(o.private_);
        }
        return *this;
    }
    Key(const Key&) = delete;
    Key& operator=(const Key&) = delete;
    ~Key() { wipe(private_); }

    bool has_private() const noexcept { return !private_.empty(); }
    const std::string& public_pem() const noexcept { return public_; }
    /// The private key's PEM (throws for a public key alone).
    const std::string& private_pem() const {
        require_private();
        return private_;
    }

    /// The base64 DER signature of `data`.
    std::string sign(std::string_view data) const {
        require_private();
        detail::CStr k(private_, "private key");
        char* sig = nullptr;
        detail::check(nexus_sign(k.get(), reinterpret_cast<const uint8_t*>(data.data()),
                                 data.size(), &sig));
        detail::owned_cstr s(sig);
        return detail::to_string(s);
    }
    /// Whether `signature_b64` is this key's signature of `data`.
    bool verify(std::string_view data, std::string_view signature_b64) const {
        detail::CStr k(public_, "public key");
        detail::CStr s(signature_b64, "signature");
        return crypto_result(nexus_verify(k.get(), reinterpret_cast<const uint8_t*>(data.data()),
                                          data.size(), s.get()));
    }
    /// Signs the file at `path`, writing PATH.sig.
    void sign_file(std::string_view path) const {
        require_private();
        detail::CStr p(path, "path");
        detail::CStr k(private_, "private key");
        detail::check(nexus_sign_file(p.get(), k.get()));
    }
    /// Whether PATH.sig exists and is this key's signature of the file at `path`.
    bool verify_file(std::string_view path) const {
        detail::CStr p(path, "path");
        detail::CStr k(public_, "public key");
        return crypto_result(nexus_verify_file(p.get(), k.get()));
    }

private:
    Key(std::string priv, std::string pub) : private_(std::move(priv)), public_(std::move(pub)) {}

    static bool crypto_result(int rc) {
        if (rc == NEXUS_CRYPTO) return false;
        detail::check(rc);
        return true;
    }
    void require_private() const {
        if (private_.empty()) throw Error(NEXUS_INVALID_ARGUMENT, "nexus::Key has no private key");
    }
    static void wipe(std::string& s) noexcept { detail::wipe_string(s); }

    std::string private_;
    std::string public_;
};

inline Database Database::open_encrypted(std::string_view path, const Key& key,
                                         std::string_view options_json) {
    return open_encrypted(path, key.private_pem(), options_json);
}
inline void Database::add_key(const Key& key) { add_key(key.public_pem()); }
inline void Database::remove_key(const Key& key) { remove_key(key.public_pem()); }

}  // namespace nexus

#endif  // NEXUS_HPP_INCLUDED
