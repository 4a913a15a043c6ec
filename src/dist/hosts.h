// Which host each rank runs on, and strings broadcast from any rank: for messages that name the
// node at fault (a node-local checkpoint dir, a node with other files, a node that stopped
// answering). Filled in by dist::init; kept apart from dist.h so adding it rebuilt little.
#pragma once
#include <string>
#include <vector>

namespace kiln::dist {

// Every rank's hostname, indexed by rank (a world of 1: this host). Gathered once by init.
const std::vector<std::string>& hosts();
// Rank `root`'s string on every rank (collective).
std::string broadcast_string_from(const std::string& s, int root);

}  // namespace kiln::dist
