// Shape/stride logic and broadcasting.
#include <gtest/gtest.h>

#include "dlcore/errors.h"
#include "dlcore/shape.h"

using dlcore::Shape;

TEST(Shape, NumelAndOverflow) {
  EXPECT_EQ(dlcore::numel_checked({2, 3, 4}), 24);
  EXPECT_EQ(dlcore::numel_checked({}), 1);
  EXPECT_EQ(dlcore::numel_checked({5, 0, 7}), 0);
  EXPECT_THROW(dlcore::numel_checked({1LL << 40, 1LL << 40}), dlcore::ValueError);
  EXPECT_THROW(dlcore::numel_checked({2, -1}), dlcore::ValueError);
  // a zero dim wins even after an overflowing prefix
  EXPECT_EQ(dlcore::numel_checked({1LL << 40, 1LL << 40, 0}), 0);
}

TEST(Shape, ContiguousStrides) {
  EXPECT_EQ(dlcore::contiguous_strides({2, 3, 4}), (Shape{12, 4, 1}));
  EXPECT_EQ(dlcore::contiguous_strides({}), Shape{});
  EXPECT_TRUE(dlcore::is_contiguous({2, 3}, {3, 1}));
  EXPECT_FALSE(dlcore::is_contiguous({2, 3}, {1, 2}));
  EXPECT_TRUE(dlcore::is_contiguous({1, 3}, {99, 1}));  // size-1 dims do not matter
}

TEST(Shape, Broadcast) {
  EXPECT_EQ(dlcore::broadcast_shapes({3, 1}, {1, 4}), (Shape{3, 4}));
  EXPECT_EQ(dlcore::broadcast_shapes({5, 3, 1}, {4}), (Shape{5, 3, 4}));
  EXPECT_EQ(dlcore::broadcast_shapes({}, {2, 2}), (Shape{2, 2}));
  try {
    dlcore::broadcast_shapes({2, 3}, {4});
    FAIL() << "expected ValueError";
  } catch (const dlcore::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("(2, 3)"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("(4,)"), std::string::npos);
  }
  EXPECT_EQ(dlcore::broadcast_strides({3, 1}, {1, 1}, {2, 3, 4}), (Shape{0, 1, 0}));
}

TEST(Shape, NormalizeDim) {
  EXPECT_EQ(dlcore::normalize_dim(-1, 3), 2);
  EXPECT_EQ(dlcore::normalize_dim(0, 0), 0);
  EXPECT_THROW(dlcore::normalize_dim(3, 3), dlcore::IndexError);
  EXPECT_THROW(dlcore::normalize_dim(-4, 3), dlcore::IndexError);
}

TEST(Shape, InferShape) {
  EXPECT_EQ(dlcore::infer_shape({-1, 4}, 12), (Shape{3, 4}));
  EXPECT_THROW(dlcore::infer_shape({-1, 5}, 12), dlcore::ValueError);
  EXPECT_THROW(dlcore::infer_shape({-1, -1}, 12), dlcore::ValueError);
  EXPECT_THROW(dlcore::infer_shape({2, 2}, 12), dlcore::ValueError);
}

TEST(Shape, ViewStrides) {
  Shape out;
  // contiguous (2,3,4) -> (6,4) and (2,12)
  ASSERT_TRUE(dlcore::view_strides({2, 3, 4}, {12, 4, 1}, {6, 4}, out));
  EXPECT_EQ(out, (Shape{4, 1}));
  ASSERT_TRUE(dlcore::view_strides({2, 3, 4}, {12, 4, 1}, {2, 12}, out));
  EXPECT_EQ(out, (Shape{12, 1}));
  // transposed (3,2) view of a (2,3) buffer cannot be flattened without a copy
  EXPECT_FALSE(dlcore::view_strides({3, 2}, {1, 3}, {6}, out));
  // but splitting a transposed dim works: (4,2) strides (1,4) -> (2,2,2)
  ASSERT_TRUE(dlcore::view_strides({4, 2}, {1, 4}, {2, 2, 2}, out));
  EXPECT_EQ(out, (Shape{2, 1, 4}));
  // sliced with a step: (3,) stride 2 -> (3,1)
  ASSERT_TRUE(dlcore::view_strides({3}, {2}, {3, 1}, out));
  EXPECT_EQ(out[0], 2);
}

TEST(Shape, Coalesce) {
  Shape shape{2, 3, 4}, a{12, 4, 1}, b{0, 0, 1};
  dlcore::coalesce_dims(shape, {&a, &b});
  // a is contiguous but b broadcasts over the first two dims: (6, 4)
  EXPECT_EQ(shape, (Shape{6, 4}));
  EXPECT_EQ(a, (Shape{4, 1}));
  EXPECT_EQ(b, (Shape{0, 1}));
  Shape s2{2, 1, 3}, c{3, 3, 1};
  dlcore::coalesce_dims(s2, {&c});
  EXPECT_EQ(s2, (Shape{6}));
  EXPECT_EQ(c, (Shape{1}));
}
