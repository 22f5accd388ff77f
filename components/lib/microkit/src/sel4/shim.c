/*
 * Warden's shim over libmicrokit: the Microkit API in microkit.h is made of static inline
 * functions, which Rust cannot call, so each one used by the seL4 backend (src/sel4/mod.rs)
 * gets a real function here. Compiled by build.rs with the SDK's headers for the board and
 * configuration being built, so the capability slots and checks are exactly the SDK's.
 */
#include <microkit.h>

void warden_notify(microkit_channel channel)
{
    microkit_notify(channel);
}

void warden_irq_ack(microkit_channel channel)
{
    microkit_irq_ack(channel);
}

seL4_Word warden_ppcall(microkit_channel channel, seL4_Word info)
{
    microkit_msginfo message = { .words = { info } };
    return microkit_ppcall(channel, message).words[0];
}

seL4_Word warden_mr_get(seL4_Uint32 index)
{
    return microkit_mr_get(index);
}

void warden_mr_set(seL4_Uint32 index, seL4_Word value)
{
    microkit_mr_set(index, value);
}

/*
 * microkit_pd_restart writes only the PC, so a restarted child would run on below the stack
 * frame it faulted in. Write the stack pointer too: every PD's stack top is the page below the
 * IPC buffer's guard page (the tool's pd_stack_top; the IPC buffer is the top user page, as in
 * libmicrokit's main.c), the same in every PD of a system.
 */
seL4_Word warden_pd_restart(microkit_child child, seL4_Word entry_point)
{
    seL4_Word ipc_buffer = seL4_UserVSpaceTop & ~((1ULL << seL4_PageBits) - 1);
    seL4_UserContext context = { 0 };
    context.pc = entry_point;
    context.sp = ipc_buffer - (1ULL << seL4_PageBits);
    return seL4_TCB_WriteRegisters(BASE_TCB_CAP + child, seL4_True, 0, 2, &context);
}

void warden_pd_stop(microkit_child child)
{
    microkit_pd_stop(child);
}
