"""GradBucket: what a DDP communication hook is given, one bucket of gradients at a time."""


class GradBucket:
    """A flat buffer holding several parameters' gradients, handed to `hook(state, bucket)`.

        def hook(state, bucket):
            flat = bucket.buffer()            # 1-D tensor: the gradients, concatenated
            fut = dist.all_reduce(flat, async_op=True).get_future()
            return fut.then(lambda f: f.value()[0].div_(dist.get_world_size()))

    `gradients()` are views into `buffer()` shaped like `parameters()`; writing into them writes
    the buffer. The tensor the hook's Future returns (same number of elements as the buffer)
    becomes the parameters' gradients.
    """

    def __init__(self, index, bucket_count, buffer, gradients, parameters):
        self._index, self._count = index, bucket_count
        self._buffer, self._gradients, self._parameters = buffer, gradients, parameters

    def index(self):
        """The bucket's position (0 holds the last parameters, whose gradients come first)."""
        return self._index

    def buffer(self):
        return self._buffer

    def gradients(self):
        return self._gradients

    def parameters(self):
        return self._parameters

    def is_last(self):
        """Whether this is the last bucket to be reduced in the iteration."""
        return self._index == self._count - 1

    def set_buffer(self, buffer):
        """Replace the flat buffer (e.g. by a float16 copy); gradients() still view the original."""
        self._buffer = buffer
