// tls/traffic_keys: KeyTracker counts records from the traffic keys on (the sequence numbers the kernel must
// start from) and says why keys cannot be had: before the handshake, without the key-log callback, for a
// cipher the kernel's record layer lacks, after a key update. (That the keys themselves are right is shown
// in kernel_tls_test.cpp, by records a real OpenSSL peer accepts.)
#include <gtest/gtest.h>

#include <string>

#include "memory_pair.hpp"

namespace corio::tls {
namespace {

using testing::MemoryPair;

ContextOptions version(int v) {
  ContextOptions o;
  o.min_version = o.max_version = v;
  return o;
}

std::string keys_error(KeyTracker& t, SSL* ssl, Direction d) {
  auto k = t.keys(ssl, d);
  return k ? "" : k.error().message();
}

TEST(TrafficKeys, SequenceNumbersStartAfterTheHandshake) {
  for (int v : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    Context server_ctx = testing::context(true, version(v));
    Context client_ctx = testing::context(false, version(v));
    MemoryPair pair(client_ctx, server_ctx);
    pair.handshake();
    // TLS 1.3: the server's tickets are its first records under the traffic keys. TLS 1.2: Finished is
    // record 0 under the new keys (its ticket went before, in the clear).
    const std::uint64_t tickets = SSL_CTX_get_num_tickets(server_ctx.native());
    EXPECT_EQ(pair.server_keys.keys(pair.server, Direction::write)->seq, v == TLS1_3_VERSION ? tickets : 1u);
    EXPECT_EQ(pair.server_keys.keys(pair.server, Direction::read)->seq, v == TLS1_3_VERSION ? 0u : 1u);
    EXPECT_EQ(pair.client_keys.keys(pair.client, Direction::write)->seq, v == TLS1_3_VERSION ? 0u : 1u);
    for (int i = 0; i < 3; ++i) ASSERT_EQ(SSL_write(pair.client, "x", 1), 1);
    EXPECT_EQ(pair.client_keys.keys(pair.client, Direction::write)->seq, v == TLS1_3_VERSION ? 3u : 4u);
    // Keys agree across the connection: the client's sending keys are the server's receiving keys.
    auto ctx_keys = *pair.client_keys.keys(pair.client, Direction::write);
    auto srx_keys = *pair.server_keys.keys(pair.server, Direction::read);
    EXPECT_EQ(ctx_keys.key, srx_keys.key);
    EXPECT_EQ(ctx_keys.iv, srx_keys.iv);
    EXPECT_NE(ctx_keys.key, pair.client_keys.keys(pair.client, Direction::read)->key);
  }
}

TEST(TrafficKeys, SayWhyTheyCannotBeHad) {
  {
    Context server_ctx = testing::context(true, {});
    Context client_ctx = testing::context(false, {});
    MemoryPair pair(client_ctx, server_ctx);
    EXPECT_NE(keys_error(pair.client_keys, pair.client, Direction::write).find("the handshake has not finished"),
              std::string::npos);
  }
  {
    // Without the key-log callback TLS 1.3 keys are out of reach; TLS 1.2's come from the session.
    for (int v : {TLS1_3_VERSION, TLS1_2_VERSION}) {
      ContextOptions o = version(v);
      o.kernel_tls = KernelTls::off;  // such a context installs no key-log callback
      o.ca_file = testing::cert("ca.pem");
      Context client_ctx = std::move(*Context::client(o));
      Context server_ctx = testing::context(true, version(v));
      MemoryPair pair(client_ctx, server_ctx);
      pair.handshake();
      const std::string e = keys_error(pair.client_keys, pair.client, Direction::write);
      if (v == TLS1_3_VERSION) EXPECT_NE(e.find("no TLS 1.3 traffic secret seen"), std::string::npos) << e;
      else EXPECT_EQ(e, "");
    }
  }
  {
    ContextOptions o = version(TLS1_3_VERSION);
    o.ciphersuites = "TLS_AES_128_CCM_SHA256";
    Context server_ctx = testing::context(true, o);
    Context client_ctx = testing::context(false, o);
    MemoryPair pair(client_ctx, server_ctx);
    pair.handshake();
    EXPECT_NE(keys_error(pair.server_keys, pair.server, Direction::write).find("cipher TLS_AES_128_CCM_SHA256 has no kernel record layer"),
              std::string::npos);
  }
  {
    Context server_ctx = testing::context(true, version(TLS1_3_VERSION));
    Context client_ctx = testing::context(false, version(TLS1_3_VERSION));
    MemoryPair pair(client_ctx, server_ctx);
    pair.handshake();
    ASSERT_EQ(SSL_key_update(pair.client, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    ASSERT_EQ(SSL_write(pair.client, "x", 1), 1);
    MemoryPair::deliver(pair.server, MemoryPair::written(pair.client));
    char c = 0;
    ASSERT_EQ(SSL_read(pair.server, &c, 1), 1);
    EXPECT_NE(keys_error(pair.server_keys, pair.server, Direction::read).find("key update"), std::string::npos);
  }
}

}  // namespace
}  // namespace corio::tls
