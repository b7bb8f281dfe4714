// The C++ part of the NexusLite demo: bindings/cpp/nexus.hpp against libnexus.
//
//   bash examples/cpp/run.sh /tmp/demo.db      (builds, then runs: demo DBPATH)
//
// Works in the collection "cpp_demo" of DBPATH. Every run records itself there, so running
// twice shows that the database persists; the sample people are reset on every run.
#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <string_view>

#include "nexus.hpp"

namespace {

constexpr const char* kColl = "cpp_demo";

/// The raw value of a top-level field of a flat JSON document ({"a":"x"} -> "x").
/// Enough for printing this demo's documents without a JSON library.
std::string field(std::string_view doc, std::string_view name) {
    std::string key = "\"" + std::string(name) + "\":";
    std::size_t pos = doc.find(key);
    if (pos == std::string_view::npos) return "?";
    pos += key.size();
    while (pos < doc.size() && doc[pos] == ' ') ++pos;
    if (pos < doc.size() && doc[pos] == '"') {
        std::size_t end = doc.find('"', pos + 1);
        return std::string(doc.substr(pos + 1, end - pos - 1));
    }
    std::size_t end = doc.find_first_of(",}", pos);
    return std::string(doc.substr(pos, end - pos));
}

std::string person(std::string_view doc) {
    return field(doc, "name") + " (" + field(doc, "age") + ", " + field(doc, "city") + ")";
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: " << argv[0] << " DBPATH\n";
        return 2;
    }
    try {
        std::cout << "NexusLite " << nexus::version() << " (C++ binding), database " << argv[1]
                  << "\n";
        nexus::Database db = nexus::Database::open(argv[1]);

        // 1. This run: one "run" document per execution, kept across runs.
        auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
        std::string run_id = db.insert(kColl, R"({"kind":"run","lang":"cpp","at":{"$date":{"$numberLong":")" +
                                                   std::to_string(now_ms) + R"("}}})");
        std::uint64_t runs = db.count(kColl, R"({"kind":"run","lang":"cpp"})");
        std::cout << "run " << run_id << " recorded; this database has seen " << runs
                  << " C++ demo run" << (runs == 1 ? "" : "s") << "\n";

        // 2. Sample data: reset, then insert one document and a batch (atomically).
        std::uint64_t cleared = db.delete_many(kColl, R"({"kind":"person"})");
        if (cleared) std::cout << "cleared " << cleared << " people from the previous run\n";
        std::string ada = db.insert(kColl, R"({"kind":"person","name":"ada","age":36,"city":"london"})");
        std::cout << "inserted ada with generated _id " << ada << "\n";
        std::uint64_t n = db.insert_many(kColl, R"([
            {"kind":"person","name":"bob","age":25,"city":"paris"},
            {"kind":"person","name":"cy","age":41,"city":"london"},
            {"kind":"person","name":"di","age":30,"city":"rome"},
            {"kind":"person","name":"ed","age":19,"city":"paris"}])");
        std::cout << "inserted " << n << " more people\n";

        // 3. Query: filter + sort + limit, streamed with range-for.
        std::cout << "the three oldest people aged 25 or more:\n";
        for (std::string_view doc : db.find(kColl, R"({"kind":"person","age":{"$gte":25}})",
                                            R"({"sort":{"age":-1},"limit":3})")) {
            std::cout << "  " << person(doc) << "\n";
        }
        std::cout << "cities: " << db.distinct(kColl, "city", R"({"kind":"person"})") << "\n";

        // 4. Updates.
        nexus::UpdateResult r = db.update(kColl, R"({"kind":"person","city":"paris"})",
                                          R"({"$set":{"country":"fr"},"$inc":{"age":1}})",
                                          nexus::Flags::multi);
        std::cout << "birthday in paris: matched " << r.matched << ", modified " << r.modified
                  << "\n";
        if (auto doc = db.find_one_and_update(kColl, R"({"kind":"person","name":"ada"})",
                                              R"({"$set":{"title":"countess"}})",
                                              R"({"return":"after"})")) {
            std::cout << "ada is now " << field(*doc, "title") << ": " << *doc << "\n";
        }

        // 5. A transaction that is rolled back leaves no trace.
        {
            nexus::Transaction txn(db);
            db.insert(kColl, R"({"kind":"person","name":"ghost","age":99,"city":"nowhere"})");
            std::cout << "inside the transaction: "
                      << db.count(kColl, R"({"kind":"person"})") << " people\n";
        }  // no commit(): rolled back here
        std::cout << "after rollback: " << db.count(kColl, R"({"kind":"person"})")
                  << " people\n";

        // 6. Deletes.
        std::uint64_t young = db.delete_many(kColl, R"({"kind":"person","age":{"$lt":25}})");
        std::cout << "deleted " << young << (young == 1 ? " person" : " people") << " under 25\n";
        if (auto gone = db.find_one_and_delete(kColl, R"({"kind":"person","name":"di"})")) {
            std::cout << "deleted " << person(*gone) << "\n";
        }
        std::cout << "people left:";
        for (std::string_view doc : db.find(kColl, R"({"kind":"person"})", R"({"sort":{"name":1}})")) {
            std::cout << " " << field(doc, "name");
        }
        std::cout << "\n";

        // 7. An error is an exception with a NEXUS_* code and the library's message.
        try {
            db.insert(kColl, "{\"_id\":\"" + run_id + "\"}");
        } catch (const nexus::Error& e) {
            std::cout << "inserting the run's _id again fails as expected: " << e.name() << ": "
                      << e.what() << "\n";
        }

        db.close();  // the destructor would too; close() reports errors
        std::cout << "done\n";
        return 0;
    } catch (const nexus::Error& e) {
        std::cerr << "nexus error " << e.name() << " (" << e.code() << "): " << e.what()
                  << "\n";
        return 1;
    }
}
