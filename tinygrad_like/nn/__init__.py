"""tg.nn: modules, layers, losses, initialisation, and the functional namespace F."""

from tinygrad_like.nn import functional, init, parallel, utils  # noqa: F401
from tinygrad_like.nn.layers import *  # noqa: F401,F403
from tinygrad_like.nn.conv_layers import (Conv1d, ConvTranspose2d, Fold, Unfold,  # noqa: F401
                                          Upsample)
from tinygrad_like.nn.normalization import GroupNorm, RMSNorm  # noqa: F401
from tinygrad_like.nn.losses import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss,  # noqa: F401
                                     L1Loss, MSELoss, NLLLoss)
from tinygrad_like.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell  # noqa: F401
from tinygrad_like.nn.transformer import (MultiheadAttention, TransformerEncoder,  # noqa: F401
                                          TransformerEncoderLayer)
from tinygrad_like.nn.transformer_decoder import (Transformer,  # noqa: F401
                                                  TransformerDecoder, TransformerDecoderLayer)
from tinygrad_like.nn.module import Module, Parameter  # noqa: F401
from tinygrad_like.nn.containers import (ModuleDict, ModuleList, ParameterDict,  # noqa: F401
                                         ParameterList, Sequential)
