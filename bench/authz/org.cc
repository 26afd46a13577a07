#include "org.h"

#include <algorithm>
#include <random>

namespace aigis::authz::bench {

std::string UserName(int i) { return "user:u" + std::to_string(i); }
std::string TeamName(int i) { return "team:t" + std::to_string(i); }
std::string AgentName(int i) { return "agent:a" + std::to_string(i); }
std::string ModelName(int i) { return "llm_model:m" + std::to_string(i); }
std::string ServerName(int i) { return "mcp_server:s" + std::to_string(i); }
std::string ToolName(int server, int tool) { return "tool:s" + std::to_string(server) + "/t" + std::to_string(tool); }
std::string ServerWideToolName(int server) { return "tool:s" + std::to_string(server) + "/*"; }

namespace {

std::string TenantName(int i) { return "tenant:n" + std::to_string(i); }
std::string RootName(int r) { return "data_source:r" + std::to_string(r); }
std::string MidName(int r, int m) { return RootName(r) + ".m" + std::to_string(m); }
std::string LeafName(int r, int m, int l) { return MidName(r, m) + ".l" + std::to_string(l); }

class Generator {
 public:
  explicit Generator(Org& org) : org_(org), rng_(org.shape.seed) {}

  // [0, n); `%` rather than a std distribution so that the sequence is the
  // same with every standard library (the bias is irrelevant here).
  int Pick(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }
  int PickIn(int lo, int hi) { return lo + Pick(hi - lo); }  // [lo, hi)

  void Category(std::string name) { org_.counts.emplace_back(std::move(name), 0); }

  void Emit(std::string object, std::string relation, std::string user, std::string condition = {},
            std::string condition_context = {}) {
    org_.tuples.push_back({std::move(object), std::move(relation), std::move(user), std::move(condition),
                           std::move(condition_context)});
    ++org_.counts.back().second;
  }

  // Emits `k` grants object#relation@<draw()>, skipping users already used on
  // this object#relation (a tuple may exist once). Returns the users.
  template <typename Draw>
  std::vector<std::string> EmitDistinct(const std::string& object, const std::string& relation, int k, Draw draw,
                                        std::vector<std::string>* used = nullptr) {
    std::vector<std::string> local;
    std::vector<std::string>& seen = used ? *used : local;
    std::vector<std::string> out;
    for (int attempts = 0; static_cast<int>(out.size()) < k && attempts < 100 * k; ++attempts) {
      std::string u = draw();
      if (std::find(seen.begin(), seen.end(), u) != seen.end()) continue;
      seen.push_back(u);
      out.push_back(u);
      Emit(object, relation, std::move(u));
    }
    return out;
  }

  // k distinct values in [lo, hi).
  std::vector<int> Distinct(int k, int lo, int hi) {
    std::vector<int> out;
    while (static_cast<int>(out.size()) < k && static_cast<int>(out.size()) < hi - lo) {
      int v = PickIn(lo, hi);
      if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
    }
    return out;
  }

  // A user, a team's members (teams below the roots) or an agent (not the
  // lister, agent 0).
  std::string MixedPrincipal() {
    const OrgShape& s = org_.shape;
    switch (Pick(3)) {
      case 0: return UserName(Pick(s.users));
      case 1: return TeamName(GrantTeam()) + "#member";
      default: return AgentName(PickIn(1, s.agents));
    }
  }
  // Teams that receive grants: below the roots (teams 10..), so that a grant
  // covers a tenth or a hundredth of the organisation, not all of it.
  int GrantTeam() { return PickIn(std::min(10, org_.shape.teams - 1), org_.shape.teams); }

  void Run();

 private:
  Org& org_;
  std::mt19937_64 rng_;
};

void Generator::Run() {
  const OrgShape& s = org_.shape;

  Category("tenant admin/member");
  for (int n = 0; n < s.tenants; ++n) {
    for (int u : Distinct(2, 0, s.users)) Emit(TenantName(n), "admin", UserName(u));
  }
  for (int u = 0; u < s.users; ++u) Emit(TenantName(u % s.tenants), "member", UserName(u));

  // Teams: t<i> (i >= 10) is nested in t<i/10>; leaves are the teams without
  // children (i * 10 >= teams).
  Category("team tenant/maintainer/nesting");
  auto is_leaf = [&](int t) { return t >= 10 && t * 10 >= s.teams; };
  std::vector<int> leaves;
  for (int t = 0; t < s.teams; ++t) {
    Emit(TeamName(t), "tenant", TenantName(t % s.tenants));
    Emit(TeamName(t), "maintainer", UserName(Pick(s.users)));
    if (t >= 10) Emit(TeamName(t / 10), "member", TeamName(t) + "#member");
    if (is_leaf(t)) leaves.push_back(t);
  }
  org_.team_leaves.assign(s.teams, {});
  for (int leaf : leaves) {
    for (int t = leaf;; t /= 10) {
      org_.team_leaves[t].push_back(leaf);
      if (t < 10) break;
    }
  }
  Category("team members (users in leaf teams)");
  org_.team_users.assign(s.teams, {});
  for (int u = 0; u < s.users; ++u) {
    for (int i : Distinct(s.teams_per_user, 0, static_cast<int>(leaves.size()))) {
      Emit(TeamName(leaves[i]), "member", UserName(u));
      org_.team_users[leaves[i]].push_back(u);
    }
  }

  Category("agent tenant/owner/can_use");
  for (int a = 0; a < s.agents; ++a) {
    const std::string agent = AgentName(a);
    Emit(agent, "tenant", TenantName(a % s.tenants));
    Emit(agent, "owner", a % 2 == 0 ? UserName(Pick(s.users)) : TeamName(GrantTeam()) + "#member");
    std::vector<std::string> used;
    if (a % 20 == 0) used.push_back("user:*"), Emit(agent, "can_use", "user:*");
    EmitDistinct(agent, "can_use", s.agent_can_use, [&] {
      return Pick(2) == 0 ? UserName(Pick(s.users)) : TeamName(GrantTeam()) + "#member";
    }, &used);
  }

  Category("llm_model tenant/can_use");
  org_.agent_models.assign(s.agents, {});
  for (int m = 0; m < s.models; ++m) {
    Emit(ModelName(m), "tenant", TenantName(m % s.tenants));
    for (int t : Distinct(s.teams_per_model, std::min(10, s.teams - 1), s.teams)) {
      Emit(ModelName(m), "can_use", TeamName(t) + "#member");
    }
    if (m < s.public_models) Emit(ModelName(m), "can_use", "user:*");
  }
  for (int a = 1; a < s.agents; ++a) {
    for (int m : Distinct(s.models_per_agent, 0, s.models)) {
      Emit(ModelName(m), "can_use", AgentName(a));
      org_.agent_models[a].push_back(m);
    }
  }

  Category("mcp_server tenant/owner/can_use");
  org_.server_teams.assign(s.servers, {});
  for (int sv = 0; sv < s.servers; ++sv) {
    const std::string server = ServerName(sv);
    Emit(server, "tenant", TenantName(sv % s.tenants));
    Emit(server, "owner", UserName(Pick(s.users)));
    std::vector<std::string> used;
    for (const auto& u : EmitDistinct(server, "can_use", s.server_can_use_teams,
                                      [&] { return TeamName(GrantTeam()) + "#member"; }, &used)) {
      org_.server_teams[sv].push_back(std::stoi(u.substr(6, u.find('#') - 6)));
    }
    EmitDistinct(server, "can_use", s.server_can_use_users, [&] { return UserName(Pick(s.users)); }, &used);
    EmitDistinct(server, "can_use", s.server_can_use_agents, [&] { return AgentName(PickIn(1, s.agents)); }, &used);
  }

  Category("tool parent (tool:<s>/<t>#parent@tool:<s>/*)");
  for (int sv = 0; sv < s.servers; ++sv) {
    const std::string wide = ServerWideToolName(sv);
    for (int t = 0; t < s.tools_per_server; ++t) Emit(ToolName(sv, t), "parent", wide);
  }

  Category("tool server-wide can_call (tool:<s>/*)");
  for (int sv = 0; sv < std::min(s.lister_servers, s.servers); ++sv) {
    Emit(ServerWideToolName(sv), "can_call", AgentName(0));
  }
  for (int a = 1; a < s.agents; ++a) {
    for (int sv : Distinct(s.servers_per_agent, 0, s.servers)) Emit(ServerWideToolName(sv), "can_call", AgentName(a));
  }
  for (int sv = 0; sv < s.servers; ++sv) {
    for (int t : Distinct(s.server_wide_teams, std::min(10, s.teams - 1), s.teams)) {
      Emit(ServerWideToolName(sv), "can_call", TeamName(t) + "#member");
    }
  }

  Category("tool per-tool can_call");
  int tool_index = 0;
  for (int sv = 0; sv < s.servers; ++sv) {
    for (int t = 0; t < s.tools_per_server; ++t, ++tool_index) {
      const std::string tool = ToolName(sv, t);
      std::vector<std::string> used;
      EmitDistinct(tool, "can_call", s.tool_agents, [&] { return AgentName(PickIn(1, s.agents)); }, &used);
      EmitDistinct(tool, "can_call", s.tool_teams, [&] { return TeamName(GrantTeam()) + "#member"; }, &used);
      EmitDistinct(tool, "can_call", s.tool_users, [&] { return UserName(Pick(s.users)); }, &used);
      if (s.public_tool_every > 0 && tool_index % s.public_tool_every == 0) Emit(tool, "can_call", "user:*");
    }
  }

  Category("data_source parent");
  for (int r = 0; r < s.ds_roots; ++r) {
    for (int m = 0; m < s.ds_fanout; ++m) {
      Emit(MidName(r, m), "parent", RootName(r));
      for (int l = 0; l < s.ds_fanout; ++l) Emit(LeafName(r, m, l), "parent", MidName(r, m));
    }
  }

  Category("data_source root owner/writer/reader");
  org_.root_readers.assign(s.ds_roots, {});
  for (int r = 0; r < s.ds_roots; ++r) {
    const std::string root = RootName(r);
    Emit(root, "owner", TeamName(GrantTeam()) + "#member");
    EmitDistinct(root, "writer", s.root_writers, [&] { return UserName(Pick(s.users)); });
    std::vector<std::string> used;
    for (const auto& u : EmitDistinct(root, "reader", s.root_readers, [&] { return UserName(Pick(s.users)); }, &used)) {
      org_.root_readers[r].push_back(std::stoi(u.substr(6)));
    }
  }

  Category("data_source mid writer/reader");
  for (int r = 0; r < s.ds_roots; ++r) {
    for (int m = 0; m < s.ds_fanout; ++m) {
      const std::string mid = MidName(r, m);
      Emit(mid, "writer", UserName(Pick(s.users)));
      EmitDistinct(mid, "reader", s.mid_readers, [&] { return MixedPrincipal(); });
    }
  }

  Category("data_source leaf writer/reader");
  struct PendingLeaf {
    int index;
    std::string name;
    std::vector<std::string> used;  // reader users already on the leaf
  };
  std::vector<PendingLeaf> leaf_conditional;
  int leaf_index = 0;
  for (int r = 0; r < s.ds_roots; ++r) {
    for (int m = 0; m < s.ds_fanout; ++m) {
      for (int l = 0; l < s.ds_fanout; ++l, ++leaf_index) {
        const std::string leaf = LeafName(r, m, l);
        Emit(leaf, "writer", UserName(Pick(s.users)));
        std::vector<std::string> used;
        EmitDistinct(leaf, "reader", s.leaf_readers, [&] { return MixedPrincipal(); }, &used);
        if (s.public_leaf_every > 0 && leaf_index % s.public_leaf_every == 0) Emit(leaf, "reader", "user:*");
        if (s.conditional_leaf_every > 0 && leaf_index % s.conditional_leaf_every == 0) {
          leaf_conditional.push_back({leaf_index, leaf, std::move(used)});
        }
      }
    }
  }

  // Conditional grants last, in their own category (they are the ones the
  // conditional Check queries use).
  Category("data_source leaf reader `with from_network`");
  for (auto& [index, leaf, used] : leaf_conditional) {
    for (const auto& u : EmitDistinct(leaf, "reader", 1, [&] { return AgentName(PickIn(1, s.agents)); }, &used)) {
      org_.tuples.back().condition = "from_network";
      org_.tuples.back().condition_context = kConditionContext;
      org_.conditional.emplace_back(index, std::stoi(u.substr(7)));
    }
    if (s.conditional_team_every > 0 && index % s.conditional_team_every == 0) {
      for (const auto& u : EmitDistinct(leaf, "reader", 1, [&] { return TeamName(GrantTeam()) + "#member"; }, &used)) {
        (void)u;
        org_.tuples.back().condition = "from_network";
        org_.tuples.back().condition_context = kConditionContext;
      }
    }
  }
}

}  // namespace

std::string LeafDataSourceName(const OrgShape& shape, int leaf) {
  const int per_root = shape.ds_fanout * shape.ds_fanout;
  const int r = leaf / per_root;
  const int m = (leaf % per_root) / shape.ds_fanout;
  const int l = leaf % shape.ds_fanout;
  return LeafName(r, m, l);
}

Org GenerateOrg(const OrgShape& shape) {
  Org org;
  org.shape = shape;
  Generator(org).Run();
  return org;
}

}  // namespace aigis::authz::bench
