// NexusLite from C++ in a few lines: bindings/cpp/nexus.hpp over the C ABI.
#include <iostream>

#include "nexus.hpp"

int main(int argc, char** argv) try {
    auto db = nexus::Database::open(argc > 1 ? argv[1] : "quickstart.db");

    std::string id = db.insert("people", R"({"name":"ada","age":36})");  // returns the _id
    db.insert_many("people", R"([{"name":"bob","age":25},{"name":"cy","age":41}])");
    db.update("people", R"({"name":"bob"})", R"({"$inc":{"age":1}})");

    for (std::string_view doc : db.find("people", R"({"age":{"$gt":30}})",
                                        R"({"sort":{"age":-1},"limit":10})"))
        std::cout << doc << '\n';

    std::cout << "ada: " << db.get("people", id).value_or("(gone)") << '\n';
    std::cout << "deleted " << db.delete_many("people", R"({"age":{"$lt":30}})")
              << ", left " << db.count("people") << '\n';
    return 0;
} catch (const nexus::Error& e) {  // code() is a NEXUS_* status, what() the library's message
    std::cerr << "nexus error " << e.name() << ": " << e.what() << '\n';
    return 1;
}
