/* host/torch_pt.h — PyTorch's own checkpoint files (torch.save since PyTorch 1.6: a zip archive of
 * stored entries, "<dir>/data.pkl" a pickle of the object, "<dir>/data/<key>" the raw bytes of each
 * storage) read as a state dict, for host/safetensors.c's dg_st_open, so that every command takes
 * a .pt or .pth file wherever it takes a safetensors file. The pickle is interpreted by a small
 * machine that knows only the opcodes and the few callables a saved state dict uses (dicts,
 * OrderedDict, _rebuild_tensor_v2, _rebuild_parameter): it never imports or calls anything, so a
 * hostile file can only be refused. Objects of any other class (a checkpoint's argparse.Namespace)
 * are kept as opaque values with the state their BUILD gives, allowed beside the weights and
 * refused among them. A whole module (torch.save(model), or a checkpoint's entry that is one, or
 * torch.jit.save's archive) is read as its state_dict() would name it. Host memory only; knows
 * nothing of nets or devices. */
#ifndef DG_TORCH_PT_H
#define DG_TORCH_PT_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

/* Whether bytes[size] are PyTorch's rather than safetensors: a zip archive (what torch.save
 * writes), unless the first 8 bytes also read as a plausible safetensors header length, or the
 * legacy pickle format (which dg_pt_fill only refuses, naming the fix). */
int dg_pt_claims(const uint8_t *bytes, size_t size);

/* The entry of the archive's folder that holds dnnguard's string metadata. */
#define DG_PT_META_ENTRY "extra/dnnguard_metadata.json"

/* f->path, f->bytes and f->size hold a whole file that dg_pt_claims accepted. Fills f as
 * dg_st_open does: every tensor of the state dict, in the pickle's order, dtypes as saved, with
 * data_start 0: read where it lies in f->bytes when it is contiguous and alone on its storage,
 * else copied contiguous (strides and storage offsets applied) into room added after the file;
 * metadata "source" = "torch.save" ("torch.jit.save" for a TorchScript archive) and, when the
 * tensors came from the one entry of a checkpoint dict that holds a dict of weights (a tensor of
 * one or more dimensions among its values: a dict of 0-d metrics is not one) or a module
 * ({"state_dict": ..., "epoch": ...}, {"model": <module>, ...}), "torch_entry" = that entry's key;
 * "torch_module" = the module's class ("__main__.Net", "__torch__.Net") when they came from a whole
 * module: a pickled nn.Module's parameters (not None ones), buffers (not the non-persistent ones)
 * and submodules', in state_dict()'s order; a TorchScript module's as torch.jit names them from
 * its class's code in the archive: in slot order, the __parameters__ holding a tensor, the
 * __buffers__ declared Tensor (its non-persistent ones included, as the scripted module's
 * state_dict() has them; Optional[Tensor] ones not), then the slots declared of a Module or module
 * interface class; a checkpoint's state dict is taken before a module beside it that holds the
 * same tensors (and refused beside one that holds others: a model and its EMA copy);
 * an _extra_state is not read; a "module."
 * prefix that every name carries (DataParallel's) is removed and recorded as
 * "torch_stripped_prefix"; beside these four, the pairs of the archive's DG_PT_META_ENTRY
 * (dg_pt_write's metadata: a JSON object of strings, refused otherwise; what it says of the four
 * is dropped). Names are not yet checked for duplicates (the caller does). 0, or -1 with err =
 * "<path>: <what is wrong>": the legacy pre-1.6 format, big-endian data, a compressed entry, a key
 * given twice, a storage or tensor that does not fit or is typed two ways, tensors that would take
 * over 8 times the file (and 64 MiB), a pickle of protocol 0 or 1 (or above 5), an opcode that
 * protocols 2-5 do not give a state dict, BUILD of a tensor or of one
 * object twice, modules nested over 64 deep (a module inside itself), a module dict with a key
 * twice, a walk over modules longer than the pickle's size allows, a TorchScript class without its
 * code, two sets of weights in one checkpoint (two dicts of weights, two whole modules, a module
 * and a state dict of other tensors), each named; f's fields are then for dg_st_close only. */
int dg_pt_fill(dg_st_file *f, char *err, size_t err_len);

/* Whether path names a torch.save file by its extension (.pt or .pth, any case): where
 * dg_st_write writes PyTorch's format instead of safetensors. */
int dg_pt_path(const char *path);

/* Whether a metadata key is one the reader sets to describe the file it read (source, torch_entry,
 * torch_module, torch_stripped_prefix): said of that file only, so a writer does not copy it on. */
int dg_pt_reader_key(const char *key);

/* Write entries, which dg_st_write has checked (nbytes[i]: entry i's data size), as
 * torch.save(OrderedDict of contiguous CPU tensors, path) writes them (host/torch_pt_write.c), with
 * the metadata pairs in the archive's extra/dnnguard_metadata.json, which dg_pt_fill reads back;
 * atomically. What would need zip64 (past 4 GiB, 65535 entries or more) and strides that overflow
 * int64 are refused. 0, or -1 with err = "<path>: <problem>". */
int dg_pt_write(const char *path, const dg_st_entry *entries, int n, const size_t *nbytes, const char *const *meta_keys,
                const char *const *meta_values, int n_meta, char *err, size_t err_len);

#endif
