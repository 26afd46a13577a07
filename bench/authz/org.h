// A generated organisation over the default authorization model
// (rules/authz/model.fga), for the authz benchmarks.
//
// Deterministic: the same OrgShape gives the same tuples, in the same order,
// on every platform (std::mt19937_64 with a fixed seed, reduced with `%`,
// never through the implementation-defined std distributions). Besides the
// tuples it keeps the structure the query generators need (who was granted
// what), so that a query known to be allowed by construction can be built
// without searching the tuples.
//
// Shape with the defaults (about 1.07M tuples):
//   tenant:n<k>                 10 tenants; users are members of one
//   user:u<i>                   10k users, each in 3 leaf teams
//   team:t<i>                   1k teams, 3 levels: t1..t9 <- t10..t99 <- t100..t999
//                               (team:<parent>#member@team:<child>#member)
//   agent:a<i>                  5k agents: tenant, owner (user or team), can_use
//   llm_model:m<i>              50 models; each agent granted 5; 20 teams each;
//                               user:* on a few ("public" models)
//   mcp_server:s<i>             500 servers: tenant, owner, can_use (teams, users, agents)
//   tool:s<i>/t<j>              100 tools per server (50k) with
//                               tool:s<i>/t<j>#parent@tool:s<i>/* and per-tool
//                               can_call grants; server-wide can_call grants
//                               on tool:s<i>/*; agent:a0 ("the lister") is
//                               granted server-wide on `lister_servers` servers
//                               and nothing else
//   data_source:r<i>[.m<j>[.l<k>]]  1k roots x 10 mids x 10 leaves, parent
//                               tuples; owner/writer/reader grants at each
//                               level; some leaf reader grants `with
//                               from_network` carrying {"cidr":"10.0.0.0/8"};
//                               user:* readers on a few leaves
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "authz/authz.h"

namespace aigis::authz::bench {

// Sizes of the organisation; every field has its default in place.
struct OrgShape {
  uint64_t seed = 0x6169676973ULL;  // "aigis"
  int tenants = 10;
  int users = 10000;
  int teams = 1000;            // 3 levels: see org.h's header comment
  int teams_per_user = 3;      // leaf teams
  int agents = 5000;
  int agent_can_use = 4;       // grants on each agent
  int models = 50;
  int public_models = 5;       // llm_model:m<i>#can_use@user:* for i < public_models
  int models_per_agent = 5;    // direct llm_model#can_use@agent grants
  int teams_per_model = 20;
  int servers = 500;
  int tools_per_server = 100;
  int server_can_use_teams = 10;
  int server_can_use_users = 10;
  int server_can_use_agents = 20;
  int servers_per_agent = 4;       // server-wide can_call grants per agent
  int server_wide_teams = 2;       // server-wide can_call grants per server to team#member
  int tool_agents = 4;             // per-tool can_call grants
  int tool_teams = 1;
  int tool_users = 1;
  int public_tool_every = 100;     // tool:<s>/t<j>#can_call@user:* on every n-th tool
  int lister_servers = 100;        // servers granted to agent:a0 (ListObjects ~= this x tools_per_server)
  int ds_roots = 1000;
  int ds_fanout = 10;              // mids per root, leaves per mid
  int root_readers = 5;            // users
  int root_writers = 2;            // users
  int mid_readers = 3;             // users / teams / agents
  int leaf_readers = 3;            // users / teams / agents
  int conditional_leaf_every = 10; // a `with from_network` agent reader on every n-th leaf
  int conditional_team_every = 50; // ... and a team one on every n-th leaf
  int public_leaf_every = 100;     // user:* reader on every n-th leaf
};

struct Org {
  OrgShape shape;
  std::vector<TupleKey> tuples;                           // in generation order
  std::vector<std::pair<std::string, size_t>> counts;     // tuples per category, in order

  // Structure kept for the query generators (indexes into the entity kinds).
  std::vector<std::vector<int>> agent_models;   // direct llm_model grants of each agent
  std::vector<std::vector<int>> server_teams;   // team#member granted mcp_server#can_use
  std::vector<std::vector<int>> team_users;     // direct user members of each team
  std::vector<std::vector<int>> team_leaves;    // leaf teams at or under each team
  std::vector<std::vector<int>> root_readers;   // users granted reader on each data source root
  std::vector<std::pair<int, int>> conditional; // (leaf data source index, agent) `with from_network`

  int leaf_ds_count() const { return shape.ds_roots * shape.ds_fanout * shape.ds_fanout; }
};

Org GenerateOrg(const OrgShape& shape = {});

// Entity names (shared by the generator and the queries).
std::string UserName(int i);       // "user:u42"
std::string TeamName(int i);       // "team:t42"
std::string AgentName(int i);      // "agent:a42"
std::string ModelName(int i);      // "llm_model:m42"
std::string ServerName(int i);     // "mcp_server:s42"
std::string ToolName(int server, int tool);  // "tool:s4/t2"
std::string ServerWideToolName(int server);  // "tool:s4/*"
// Leaf data source index -> "data_source:r<root>.m<mid>.l<leaf>"; the root of
// a leaf index is leaf / (fanout * fanout).
std::string LeafDataSourceName(const OrgShape& shape, int leaf);

// The condition context carried by the conditional grants, and request
// contexts inside and outside its network.
inline constexpr const char* kConditionContext = R"({"cidr":"10.0.0.0/8"})";
inline constexpr const char* kInsideContext = R"({"client_ip":"10.1.2.3"})";
inline constexpr const char* kOutsideContext = R"({"client_ip":"192.168.1.1"})";

}  // namespace aigis::authz::bench
