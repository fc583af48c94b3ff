import Testing

/// Tests that run real apt, image tools and qemu share caches and two cores: run them one at a time.
@Suite(.serialized) struct HeavySuite {}
