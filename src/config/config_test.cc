#include "config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace aigis::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(Config, EmptyFileMeansDefaults) {
  auto r = LoadString("", "a.yaml");
  ASSERT_TRUE(r.errors.empty()) << r.errors[0];
  EXPECT_EQ(r.config->proxy.port, 8080);
  EXPECT_EQ(r.config->admin.port, 8081);
  EXPECT_EQ(r.config->data_dir, "./data");
  ASSERT_EQ(r.config->routes.size(), 1u);
  EXPECT_EQ(r.config->routes[0].upstreams[0], "echo");
}

TEST(Config, ParsesAFullFile) {
  setenv("AIGIS_TEST_KEY", "sk-test-123", 1);
  auto r = LoadString(R"(
listeners:
  proxy: {address: "127.0.0.1:0"}
  admin: {address: "[::1]:9091"}
server:
  threads: 2
  max_body_bytes: 1MiB
  header_timeout: 2s
upstreams:
  - name: primary
    provider: openai
    base_url: http://127.0.0.1:9000/v1
    api_key: ${env:AIGIS_TEST_KEY}
    connect_timeout: 250ms
  - name: claude
    provider: anthropic
model_aliases:
  fast: gpt-4o-mini
routes:
  - name: openai
    models: ["gpt-*"]
    upstreams: [primary]
  - name: anthropic
    paths: [/v1/messages]
    upstreams: [claude]
)", "t.yaml");
  ASSERT_TRUE(r.errors.empty()) << r.errors[0];
  const Config& c = *r.config;
  EXPECT_EQ(c.proxy.port, 0);
  EXPECT_EQ(c.admin.host, "::1");
  EXPECT_EQ(c.server.threads, 2);
  EXPECT_EQ(c.server.max_body_bytes, 1u << 20);
  EXPECT_EQ(c.server.header_timeout.count(), 2000);
  ASSERT_EQ(c.upstreams.size(), 2u);
  EXPECT_EQ(c.upstreams[0].api_key.Reveal(), "sk-test-123");
  EXPECT_EQ(c.upstreams[0].connect_timeout.count(), 250);
  EXPECT_EQ(c.upstreams[1].base_url, "https://api.anthropic.com/v1");
  EXPECT_EQ(c.model_aliases.at("fast"), "gpt-4o-mini");
  EXPECT_THAT(c.routes[1].paths, ElementsAre("/v1/messages"));
  EXPECT_THAT(c.routes[1].models, ElementsAre("*"));
}

TEST(Config, ReportsEveryErrorWithFileAndLine) {
  unsetenv("AIGIS_MISSING_VAR");
  auto r = LoadString(R"(listeners:
  proxy: {address: "localhost:80"}
server:
  max_body_bytes: lots
  header_timeout: 10
  bogus: 1
upstreams:
  - name: a
    provider: openia
    api_key: ${env:AIGIS_MISSING_VAR}
routes:
  - name: r
    upstreams: [nope]
    paths: [/v1/chat]
)", "bad.yaml");
  ASSERT_FALSE(r.config);
  std::string all;
  for (auto& e : r.errors) all += e + "\n";
  EXPECT_THAT(all, HasSubstr("bad.yaml:2: listeners.proxy.address must be IP:PORT"));
  EXPECT_THAT(all, HasSubstr("bad.yaml:4: server.max_body_bytes must be a size"));
  EXPECT_THAT(all, HasSubstr("bad.yaml:5: server.header_timeout: invalid duration '10'"));
  EXPECT_THAT(all, HasSubstr("bad.yaml:6: unknown key 'bogus' in server"));
  EXPECT_THAT(all, HasSubstr("bad.yaml:9: upstream 'a': provider must be openai, anthropic or echo"));
  EXPECT_THAT(all, HasSubstr("bad.yaml:10: upstream 'a'.api_key: environment variable 'AIGIS_MISSING_VAR' is not set"));
  EXPECT_THAT(all, HasSubstr("bad.yaml:13: route 'r': upstream 'nope' is not declared"));
  EXPECT_THAT(all, HasSubstr("bad.yaml:14: route 'r': unknown path '/v1/chat'"));
  EXPECT_EQ(r.errors.size(), 8u) << all;
}

TEST(Config, SyntaxErrorHasLine) {
  auto r = LoadString("server:\n  threads: [1,\n", "s.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0], HasSubstr("s.yaml:"));
}

TEST(Config, SecretsFromFilesRelativeToConfig) {
  auto dir = std::filesystem::temp_directory_path() / "aigis_config_test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "key.txt") << "sk-from-file\n";
  std::ofstream(dir / "aigis.yaml") << "upstreams:\n  - {name: u, provider: openai, api_key: \"${file:key.txt}\"}\n"
                                       "routes:\n  - {name: r, upstreams: [u]}\n";
  auto r = LoadFile((dir / "aigis.yaml").string());
  ASSERT_TRUE(r.errors.empty()) << r.errors[0];
  EXPECT_EQ(r.config->upstreams[0].api_key.Reveal(), "sk-from-file");
  auto missing = LoadString("upstreams:\n  - {name: u, provider: openai, api_key: \"${file:nope}\"}\n"
                            "routes:\n  - {name: r, upstreams: [u]}\n", "m.yaml", dir.string());
  ASSERT_EQ(missing.errors.size(), 1u);
  EXPECT_THAT(missing.errors[0], HasSubstr("m.yaml:2: upstream 'u'.api_key: cannot read secret file"));
  std::filesystem::remove_all(dir);
}

TEST(Config, UpstreamsWithoutRoutesIsAnError) {
  auto r = LoadString("upstreams:\n  - {name: u, provider: echo}\n", "x.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0], HasSubstr("no routes"));
}

TEST(Config, DuplicateNamesAreErrors) {
  auto r = LoadString("upstreams:\n  - {name: u, provider: echo}\n  - {name: u, provider: echo}\n"
                      "routes:\n  - {name: r, upstreams: [u]}\n", "d.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0], HasSubstr("d.yaml:3: upstream 'u' is declared twice (first at line 2)"));
}

TEST(Config, AuthzDefaultsAndChecks) {
  auto off = LoadString("", "a.yaml");
  ASSERT_TRUE(off.errors.empty());
  EXPECT_FALSE(off.config->authz.enabled);

  auto on = LoadString("authz:\n  enabled: true\n  seed_tuples: [\"llm_model:x#can_use@agent:a\"]\n", "a.yaml");
  ASSERT_TRUE(on.errors.empty()) << on.errors[0];
  const auto& a = on.config->authz;
  EXPECT_TRUE(a.enabled);
  EXPECT_EQ(a.store, "aigis");
  ASSERT_EQ(a.checks.at("llm").size(), 1u);
  EXPECT_EQ(a.checks.at("llm")[0].user, "{subject}");
  EXPECT_EQ(a.checks.at("llm")[0].relation, "can_use");
  EXPECT_EQ(a.checks.at("llm")[0].object, "llm_model:{request.model}");

  auto custom = LoadString(R"(
authz:
  enabled: true
  checks:
    llm:
      - user: "agent:{principal.id}"
        relation: can_use
        object: "llm_model:{request.upstream_model}"
        contextual_tuples: ["llm_model:{request.upstream_model}#tenant@tenant:{principal.tenant}"]
      - relation: can_use
        object: "agent:{principal.id}"
)", "a.yaml");
  ASSERT_TRUE(custom.errors.empty()) << custom.errors[0];
  ASSERT_EQ(custom.config->authz.checks.at("llm").size(), 2u);
  EXPECT_EQ(custom.config->authz.checks.at("llm")[0].contextual_tuples.size(), 1u);

  auto none = LoadString("authz:\n  enabled: true\n  checks:\n    llm: []\n", "a.yaml");
  ASSERT_TRUE(none.errors.empty()) << none.errors[0];
  EXPECT_TRUE(none.config->authz.checks.at("llm").empty()) << "an explicit empty list means no check";
}

TEST(Config, AuthzErrorsNameTheLine) {
  auto r = LoadString(R"(authz:
  enabled: yes
  seed_tuples: ["llm_model:x@agent:a"]
  checks:
    mcp: []
    llm:
      - relation: can_use
        object: "llm_model:{request.modle}"
      - object: "llm_model:x"
      - relation: can_use
        object: "llm_model:{request.model"
)", "a.yaml");
  EXPECT_THAT(r.errors, ElementsAre(HasSubstr("a.yaml:2: authz.enabled must be true or false"),
                                    HasSubstr("a.yaml:3: authz.seed_tuples: 'llm_model:x@agent:a' is not object#relation@user"),
                                    HasSubstr("a.yaml:5: unknown key 'mcp' in authz.checks"),
                                    HasSubstr("a.yaml:7: authz.checks.llm.object: unknown variable '{request.modle}'"),
                                    HasSubstr("a.yaml:9: authz.checks.llm: a check needs user, relation and object"),
                                    HasSubstr("a.yaml:10: authz.checks.llm.object: unterminated '{'")));
}

TEST(Config, GuardSection) {
  auto d = LoadString("", "a.yaml");
  ASSERT_TRUE(d.errors.empty());
  EXPECT_FALSE(d.config->guard.enabled);
  EXPECT_EQ(d.config->guard.mode, "enforce");
  auto g = LoadString("guard:\n  enabled: true\n  mode: monitor\n  rules: [extra.yaml]\n  block_threshold: 0.8\n", "a.yaml");
  ASSERT_TRUE(g.errors.empty()) << g.errors[0];
  EXPECT_EQ(g.config->guard.mode, "monitor");
  EXPECT_EQ(g.config->guard.rules, std::vector<std::string>{"extra.yaml"});
  EXPECT_DOUBLE_EQ(g.config->guard.block_threshold, 0.8);
  auto bad = LoadString("guard:\n  enabled: true\n  mode: loud\n  block_threshold: 2\n  builtin_rules: false\n", "a.yaml");
  EXPECT_THAT(bad.errors, ElementsAre(HasSubstr("a.yaml:3: guard.mode must be enforce, monitor or off"),
                                      HasSubstr("a.yaml:4: guard.block_threshold must be a number between 0 and 1"),
                                      HasSubstr("guard is enabled without rules")));
}

TEST(Config, McpSection) {
  auto d = LoadString("", "a.yaml");
  ASSERT_TRUE(d.errors.empty());
  EXPECT_TRUE(d.config->mcp.servers.empty());
  EXPECT_EQ(d.config->mcp.separator, "__");
  setenv("AIGIS_TEST_MCP_TOKEN", "tok-1", 1);
  auto r = LoadString(R"(mcp:
  separator: "."
  page_size: 20
  servers:
    - name: files
      url: https://files.internal/mcp
      headers: {Authorization: "Bearer ${env:AIGIS_TEST_MCP_TOKEN}"}
    - name: local-git
      command: node
      args: [server.mjs, --stdio]
      env: {LOG: debug}
      auto_approve: true
      restart_backoff: 50ms
)", "a.yaml");
  ASSERT_TRUE(r.errors.empty()) << r.errors[0];
  const McpConfig& m = r.config->mcp;
  EXPECT_EQ(m.separator, ".");
  EXPECT_EQ(m.page_size, 20u);
  ASSERT_EQ(m.servers.size(), 2u);
  EXPECT_EQ(m.servers[0].url, "https://files.internal/mcp");
  EXPECT_EQ(m.servers[0].headers.at("Authorization").Reveal(), "Bearer tok-1");
  EXPECT_FALSE(m.servers[0].auto_approve);
  EXPECT_EQ(m.servers[1].command, "node");
  EXPECT_THAT(m.servers[1].args, ElementsAre("server.mjs", "--stdio"));
  EXPECT_EQ(m.servers[1].env.at("LOG").Reveal(), "debug");
  EXPECT_TRUE(m.servers[1].auto_approve);
  EXPECT_EQ(m.servers[1].restart_backoff, milliseconds(50));
  EXPECT_EQ(m.Find("local-git"), &m.servers[1]);
  EXPECT_EQ(m.Find("nope"), nullptr);

  auto bad = LoadString(R"(mcp:
  servers:
    - name: Files
      url: ftp://x
    - name: a__b
      command: x
    - name: both
      url: http://x/mcp
      command: y
    - name: neither
    - name: dup
      command: x
    - name: dup
      url: http://x/mcp
      args: [a]
)", "a.yaml");
  EXPECT_THAT(bad.errors, ElementsAre(HasSubstr("a.yaml:3: mcp server 'Files': name must be 1 to 64 of a-z, 0-9, '-' and '_'"),
                                      HasSubstr("a.yaml:4: mcp server 'Files': url must start with http:// or https://"),
                                      HasSubstr("a.yaml:5: mcp server 'a__b': the name must not contain the separator '__'"),
                                      HasSubstr("a.yaml:7: mcp server 'both': give either url (Streamable HTTP) or command (stdio)"),
                                      HasSubstr("a.yaml:10: mcp server 'neither': give either url"),
                                      HasSubstr("a.yaml:13: mcp server 'dup': args, env and cwd are for stdio servers"),
                                      HasSubstr("a.yaml:13: mcp server 'dup' is declared twice (first at line 11)")));
}

TEST(Config, GuardPoliciesAndClassifier) {
  auto g = LoadString(R"(upstreams: [{name: e, provider: echo}]
routes: [{name: internal, upstreams: [e]}]
guard:
  enabled: true
  block_threshold: 0.8
  policies:
    - name: bots
      routes: [internal]
      principals: ["agent:ci-*"]
      mode: monitor
      disabled_rules: [pii]
  classifier: {url: "http://127.0.0.1:9/v1/moderations", timeout: 300ms, failure_mode: open}
)", "a.yaml");
  ASSERT_TRUE(g.errors.empty()) << g.errors[0];
  ASSERT_EQ(g.config->guard.policies.size(), 1u);
  const auto& p = g.config->guard.policies[0];
  EXPECT_EQ(p.mode, "monitor");
  EXPECT_DOUBLE_EQ(p.block_threshold, 0.8);  // inherited
  EXPECT_EQ(p.disabled_rules, std::vector<std::string>{"pii"});
  EXPECT_EQ(g.config->guard.classifier.timeout, std::chrono::milliseconds(300));
  EXPECT_EQ(g.config->guard.classifier.kind, "moderation");
  EXPECT_EQ(g.config->guard.classifier.failure_mode, "open");

  auto bad = LoadString(R"(guard:
  policies:
    - {name: a, routes: [nope], mode: loud}
  classifier: {url: "ftp://x", kind: chat, failure_mode: maybe}
)", "b.yaml");
  EXPECT_THAT(bad.errors, ElementsAre(HasSubstr("b.yaml:3: guard.policies.a.mode must be enforce, monitor or off"),
                                      HasSubstr("b.yaml:4: guard.classifier.url must be an http(s) URL"),
                                      HasSubstr("guard.classifier.model is required"),
                                      HasSubstr("guard.classifier.failure_mode must be closed or open"),
                                      HasSubstr("b.yaml:3: guard.policies.a: unknown route 'nope'")));
}

TEST(Config, HostileYamlDoesNotCrash) {
  std::vector<std::string> inputs = {
      "[", "{", "a: &a [*a]", "!!binary zzz", "- - - - - -", ":", "a: b: c", "listeners: [1,2]",
      "server: {threads: -1}", "server: {threads: 99999999999999999999}", "routes: {a: 1}", "upstreams: [1]",
      std::string(100000, '['), "a: " + std::string(5000, '{'), std::string(2 << 20, 'x')};
  for (const auto& in : inputs) {
    auto r = LoadString(in, "h.yaml");
    EXPECT_TRUE(r.config.has_value() || !r.errors.empty()) << in.substr(0, 40);
  }
}

}  // namespace
}  // namespace aigis::config
